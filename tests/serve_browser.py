#!/usr/bin/env python3
"""The web page of `sinkstream serve` in a real browser (headless Chromium via chromium-driver).

Starts `sinkstream serve --model tests/fixtures/tiny_model` on a free loopback port, opens the
page, starts a session from the form, and checks what a person would see:
  - the video plays: the <video>'s currentTime advances, and a screenshot of the video area has
    non-uniform pixels (a picture, not a black or grey box);
  - a prompt typed into the prompt box (Enter) shows up in the timeline with the frame it
    took effect at;
  - the live-view delay, decode on the server -> display in the browser, measured by the page
    per shown frame (requestVideoFrameCallback + the "chunk" events' wall times), at 16 and
    24 fps: printed, and written to serve_browser_latency.json in the working directory;
  - the MJPEG fallback (?view=mjpeg) shows a picture too;
  - Stop ends the session; SIGINT stops the server cleanly (exit 0);
  - a server with --token: the page asks for the token, then the API, the events
    (?access_token=) and the video (Authorization header) work.
Run by CTest (test serve_browser); by hand:
  /usr/bin/python3 tests/serve_browser.py build/sinkstream [--keep-screenshots DIR]
"""
import argparse, json, os, re, signal, struct, subprocess, tempfile, time, zlib

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def png_pixels(data):
    """Decodes an 8-bit non-interlaced RGB/RGBA PNG (what Chromium writes): (w, h, channels, rows)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, w = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and ctype in (2, 6) and interlace == 0, "unexpected PNG format"
            ch = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, stride, rows, prev = zlib.decompress(idat), w * ch, [], bytearray(w * ch)
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - ch] if i >= ch else 0
            b, c = prev[i], prev[i - ch] if i >= ch else 0
            if f == 1: line[i] = (line[i] + a) & 255
            elif f == 2: line[i] = (line[i] + b) & 255
            elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    return w, h, ch, rows


def area_stats(png, rect, dpr):
    """Distinct colours and luma standard deviation inside rect (CSS pixels) of a screenshot."""
    w, h, ch, rows = png_pixels(png)
    x0, y0 = int(rect["x"] * dpr) + 2, int(rect["y"] * dpr) + 2
    x1, y1 = min(w, int((rect["x"] + rect["width"]) * dpr) - 2), min(h, int((rect["y"] + rect["height"]) * dpr) - 2)
    colours, lum = set(), []
    for y in range(y0, y1, 2):
        r = rows[y]
        for x in range(x0, x1, 2):
            px = tuple(r[x * ch:x * ch + 3])
            colours.add(px)
            lum.append(0.299 * px[0] + 0.587 * px[1] + 0.114 * px[2])
    mean = sum(lum) / max(1, len(lum))
    sd = (sum((v - mean) ** 2 for v in lum) / max(1, len(lum))) ** 0.5
    return len(colours), sd


def wait(what, fn, timeout=20.0, every=0.1):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = fn()
        if v:
            return v
        time.sleep(every)
    raise AssertionError("timed out after %.0f s waiting for %s" % (timeout, what))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("sinkstream")
    ap.add_argument("--keep-screenshots", metavar="DIR")
    ap.add_argument("--measure-seconds", type=float, default=0, metavar="S",
                    help="measure the view delay over S seconds at each rate (default: the ~3 s "
                         "the checks take; docs/SERVER.md's figures: 30)")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="sk_serve_browser_")
    log = open(os.path.join(tmp, "serve.log"), "w+")
    server = subprocess.Popen([a.sinkstream, "serve", "--model", os.path.join(ROOT, "tests/fixtures/tiny_model"),
                               "--port", "0", "--record-dir", os.path.join(tmp, "rec")],
                              stdout=log, stderr=subprocess.STDOUT)
    driver = None
    ok = False
    try:
        # --port 0: the server binds a free port itself and names it (no race with other programs)
        ready = wait("the server's ready line", lambda: re.search(r"ready on http://127\.0\.0\.1:(\d+)/",
                                                                   open(log.name).read()), 30)
        port = int(ready.group(1))
        opts = Options()
        opts.binary_location = "/usr/bin/chromium"
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--autoplay-policy=no-user-gesture-required", "--window-size=1200,900",
                    "--force-device-scale-factor=1", "--mute-audio", "--no-first-run"):
            opts.add_argument(arg)
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
        url = "http://127.0.0.1:%d/" % port
        driver.get(url)
        js = driver.execute_script
        wait("the server line on the page", lambda: "sessions" in driver.find_element(By.ID, "server").text)
        mse = js("return !!window.MediaSource && MediaSource.isTypeSupported('video/mp4; codecs=\"avc1.42C00A\"')")
        assert mse, "this Chromium cannot play H.264 through Media Source Extensions"

        def start(fps, prompt):
            for fid, val in (("start-prompt", prompt), ("width", "96"), ("height", "64"),
                             ("seconds", "0"), ("fps", str(fps)), ("seed", "1")):
                el = driver.find_element(By.ID, fid)
                el.clear()
                el.send_keys(val)
            driver.find_element(By.ID, "start").click()
            sid = wait("a session id", lambda: js("return window.sinkstream.id"))
            return sid

        def video_time():
            return js("return document.getElementById('live').currentTime")

        results = {}
        # ---- session 1, 16 fps: plays, takes a prompt, timeline
        sid = start(16, "a cat surfing a wave")
        wait("the video to play", lambda: video_time() > 0.3, 30)
        t1 = video_time()
        wait("currentTime to advance 1 s from %.2f" % t1, lambda: video_time() > t1 + 1.0, 10)
        box = driver.find_element(By.ID, "prompt")
        box.send_keys("a dog on the moon" + Keys.ENTER)
        # read in one script: the page replaces the "queued" entry when the prompt applies
        timeline = lambda: js("return [...document.querySelectorAll('#timeline li')].map(e => e.textContent)")
        li = wait("the prompt applied in the timeline", lambda: [
            t for t in timeline() if "a dog on the moon" in t and re.match(r"frame \d+", t)], 20)
        print("timeline:", timeline())
        frame_applied = int(re.match(r"frame (\d+)", li[0]).group(1))
        assert frame_applied > 0, "the switch must apply after the first chunk: %s" % li[0]
        n0 = js("return window.sinkstream.latencies.length") if a.measure_seconds else -150
        time.sleep(a.measure_seconds or 2.5)  # latency samples
        video = driver.find_element(By.ID, "live")
        rect = js("const r = arguments[0].getBoundingClientRect(); return {x: r.x, y: r.y, width: r.width, height: r.height}", video)
        # the picture (object-fit: contain) is the middle of the element
        vw, vh = js("return [arguments[0].videoWidth, arguments[0].videoHeight]", video)
        assert (vw, vh) == (96, 64), "video is %dx%d, expected 96x64" % (vw, vh)
        s = min(rect["width"] / vw, rect["height"] / vh)
        pic = {"x": rect["x"] + (rect["width"] - vw * s) / 2, "y": rect["y"] + (rect["height"] - vh * s) / 2,
               "width": vw * s, "height": vh * s}
        png = driver.get_screenshot_as_png()
        colours, sd = area_stats(png, pic, js("return window.devicePixelRatio"))
        print("video area: %d distinct colours, luma sd %.1f" % (colours, sd))
        assert colours > 50 and sd > 5, "the video area is (nearly) uniform: %d colours, sd %.1f" % (colours, sd)
        if a.keep_screenshots:
            os.makedirs(a.keep_screenshots, exist_ok=True)
            open(os.path.join(a.keep_screenshots, "serve_page.png"), "wb").write(png)
        lat16 = js("return window.sinkstream.latencies.slice(arguments[0])", n0)
        shown16 = js("return window.sinkstream.framesShown")

        # ---- MJPEG fallback: a second tab-less load of the page, attached to the same session
        driver.get(url + "?view=mjpeg")
        # the list is redrawn every second: find and click in one script
        wait("the session in the list", lambda: js(
            "const li = [...document.querySelectorAll('#sessions li')].find(e => e.title === arguments[0]);"
            "if (li) li.click(); return !!li", sid))
        img = driver.find_element(By.ID, "mjpeg")
        wait("an MJPEG picture", lambda: js("return arguments[0].naturalWidth", img) == 96, 20)
        time.sleep(0.5)
        r = js("const r = arguments[0].getBoundingClientRect(); return {x: r.x, y: r.y, width: r.width, height: r.height}", img)
        s = min(r["width"] / 96, r["height"] / 64)
        pic = {"x": r["x"] + (r["width"] - 96 * s) / 2, "y": r["y"] + (r["height"] - 64 * s) / 2, "width": 96 * s, "height": 64 * s}
        colours, sd = area_stats(driver.get_screenshot_as_png(), pic, 1)
        print("MJPEG area: %d distinct colours, luma sd %.1f" % (colours, sd))
        assert colours > 50 and sd > 5, "the MJPEG view is (nearly) uniform"
        driver.find_element(By.ID, "stop").click()
        wait("the session to stop", lambda: driver.find_element(By.ID, "st-state").text in ("stopped", "gone"), 15)

        # ---- session 2, 24 fps: the delay at the higher rate
        driver.get(url)
        wait("the page", lambda: "sessions" in driver.find_element(By.ID, "server").text)
        start(24, "a red fox in the snow")
        wait("the video to play", lambda: video_time() > 0.3, 30)
        if a.measure_seconds:
            time.sleep(1.0)  # as at 16 fps: from the second second of playback
            n0 = js("return window.sinkstream.latencies.length")
        else:
            n0 = -150
        time.sleep(a.measure_seconds or 3.0)
        lat24 = js("return window.sinkstream.latencies.slice(arguments[0])", n0)
        driver.find_element(By.ID, "stop").click()

        # ---- a server with --token: the page asks for it, then works (token in a header for
        # fetch, ?access_token= for EventSource)
        tlog = open(os.path.join(tmp, "token.log"), "w+")
        tsrv = subprocess.Popen([a.sinkstream, "serve", "--model", os.path.join(ROOT, "tests/fixtures/tiny_model"),
                                 "--port", "0", "--token", "s3cret"], stdout=tlog, stderr=subprocess.STDOUT)
        try:
            tr = wait("the token server", lambda: re.search(r"ready on http://127\.0\.0\.1:(\d+)/", open(tlog.name).read()), 30)
            driver.get("http://127.0.0.1:%s/" % tr.group(1))
            wait("the token box", lambda: driver.find_element(By.ID, "token-box").is_displayed(), 10)
            box = driver.find_element(By.ID, "token")
            box.send_keys("s3cret" + Keys.TAB)
            wait("the API with the token", lambda: "sessions" in driver.find_element(By.ID, "server").text, 10)
            start(16, "a cat")
            wait("events through ?access_token", lambda: js("return window.sinkstream.chunkTimes.length") > 0, 20)
            wait("video with the token", lambda: video_time() > 0.3, 20)
        finally:
            tsrv.send_signal(signal.SIGINT)
            tsrv.wait(15)
            js("localStorage.removeItem('sinkstream-token')")

        for fps, lat in ((16, lat16), (24, lat24)):
            assert len(lat) >= 10, "only %d delay samples at %d fps (requestVideoFrameCallback?)" % (len(lat), fps)
            assert all(v > -50 for v in lat), "negative delays at %d fps: clocks or mapping wrong: %s" % (fps, lat[:10])
            lat = sorted(lat)
            results["%dfps" % fps] = {"p50_ms": round(lat[len(lat) // 2]), "p90_ms": round(lat[int(len(lat) * 0.9)]),
                                      "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))]),
                                      "max_ms": round(lat[-1]), "samples": len(lat)}
        results["frames_shown_16fps"] = shown16
        print("live view delay, decode -> display:", json.dumps(results))
        json.dump(results, open("serve_browser_latency.json", "w"), indent=1)
        ok = True
    finally:
        if driver:
            if not ok:
                try:
                    for e in driver.get_log("browser")[-20:]:
                        print("browser:", e)
                except Exception:
                    pass
            driver.quit()
        server.send_signal(signal.SIGINT)
        try:
            rc = server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            rc = "hung"
        log.seek(0)
        text = log.read()
        if not ok or rc != 0:
            print(text[-4000:])
        if ok:  # else the test's own failure is the one to report
            assert rc == 0, "the server did not exit cleanly on SIGINT (rc %s)" % rc
            assert "serve: stopped" in text
    print("serve_browser: ok")


if __name__ == "__main__":
    main()
