#!/usr/bin/env python3
"""How many real-time sessions does one `sinkstream serve` sustain? (docs/SERVER.md)

For each count N in --sessions, starts N unbounded real-time (paced) sessions of --width x
--height at --fps, lets them warm up, then watches each one's status for --seconds: a session
keeps up when its lag behind real time (`lag_s`) stops growing. Prints one JSON line per N and
a summary: the largest N where every session kept up. Python standard library only.

  # against a running server
  python3 tools/serve_load.py --url http://127.0.0.1:8080 --sessions 1,2,3,4
  # or start one (e.g. on the GPU machine)
  python3 tools/serve_load.py --spawn build/sinkstream --model DIR --device cuda --sessions 1,2,4,6,8
"""
import argparse, json, signal, subprocess, sys, time, urllib.error, urllib.request


def call(base, method, path, body=None, token=None):
    req = urllib.request.Request(base + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        raise SystemExit("%s %s -> %d %s" % (method, path, e.code, e.read().decode(errors="replace")))


def run_count(a, base, n):
    ids = []
    try:
        for i in range(n):
            s = call(base, "POST", "/v1/sessions", {"prompt": a.prompt, "width": a.width, "height": a.height,
                                                    "fps": a.fps, "unbounded": True, "seed": i + 1,
                                                    "live_view": not a.no_live_view}, a.token)
            ids.append(s["id"])
        time.sleep(a.warmup)
        first = {i: call(base, "GET", "/v1/sessions/" + i, token=a.token) for i in ids}
        t0 = time.time()
        time.sleep(a.seconds)
        last = {i: call(base, "GET", "/v1/sessions/" + i, token=a.token) for i in ids}
        dt = time.time() - t0
        per = []
        for i in ids:
            f, l = first[i], last[i]
            growth = (l["lag_s"] - f["lag_s"]) / dt  # seconds of lag per second: 0 when on pace
            per.append({"id": i[:8], "fps": round((l["frame"] - f["frame"]) / dt, 2), "lag_s": l["lag_s"],
                        "lag_growth": round(growth, 3), "gen_fps": l["gen_fps"], "chunk_ms": l["chunk_ms"],
                        "state": l["state"]})
        ok = all(p["state"] == "running" and p["lag_growth"] < a.max_growth for p in per)
        return {"sessions": n, "sustained": ok, "size": "%dx%d" % (a.width, a.height), "fps": a.fps,
                "per_session": per}
    finally:
        for i in ids:
            try:
                call(base, "DELETE", "/v1/sessions/" + i, token=a.token)
            except Exception as e:  # report, go on deleting the others
                print("delete %s: %s" % (i[:8], e), file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url")
    ap.add_argument("--spawn", metavar="SINKSTREAM")
    ap.add_argument("--model")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--port", type=int, default=8090)
    ap.add_argument("--token")
    ap.add_argument("--sessions", default="1,2,3,4")
    ap.add_argument("--width", type=int, default=832)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--fps", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=20, help="measured time per count")
    ap.add_argument("--warmup", type=float, default=8, help="seconds before measuring")
    ap.add_argument("--max-growth", type=float, default=0.02, help="lag growth (s/s) still counted as on pace")
    ap.add_argument("--prompt", default="a cat surfing a wave at sunset, cinematic")
    ap.add_argument("--no-live-view", action="store_true", help="sessions without the fMP4/MJPEG encode")
    a = ap.parse_args()
    server = None
    base = a.url
    if a.spawn:
        counts = [int(x) for x in a.sessions.split(",")]
        server = subprocess.Popen([a.spawn, "serve", "--model", a.model, "--device", a.device, "--port",
                                   str(a.port), "--max-sessions", str(max(counts))], stderr=subprocess.PIPE, text=True)
        for line in server.stderr:
            sys.stderr.write(line)
            if "ready on http" in line:
                break
        else:
            sys.exit("the server did not start")
        base = "http://127.0.0.1:%d" % a.port
    try:
        best = 0
        for n in [int(x) for x in a.sessions.split(",")]:
            r = run_count(a, base, n)
            print(json.dumps(r), flush=True)
            if r["sustained"]:
                best = max(best, n)
        print(json.dumps({"max_real_time_sessions": best, "size": "%dx%d" % (a.width, a.height), "fps": a.fps,
                          "server": call(base, "GET", "/v1/server", token=a.token)}))
    finally:
        if server:
            server.send_signal(signal.SIGINT)
            server.wait(60)


if __name__ == "__main__":
    main()
