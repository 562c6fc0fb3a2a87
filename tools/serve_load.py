#!/usr/bin/env python3
"""How many real-time sessions does one `sinkstream serve` sustain? (docs/SERVER.md)

For each count N in --sessions, starts N unbounded real-time (paced) sessions of --width x
--height at --fps, lets them warm up, then watches each one's status for --seconds: a session
keeps up when its lag behind real time (`lag_s`) stops growing and it delivers its frame rate.
Prints a table (sessions, per-session fps, min fps, lag, real time yes/no, GPU memory) and, with
--json FILE, writes every figure there. Python standard library only (the GPU machine has no
extra Python packages); GPU memory comes from nvidia-smi when there is one.

  # against a running server
  python3 tools/serve_load.py --url http://127.0.0.1:8080 --sessions 1,2,3,4
  # or start one: a converted model, or random weights of the real shape (no files needed)
  python3 tools/serve_load.py --spawn build-cuda/sinkstream --model DIR --device cuda --sessions 1,2,4,6,8
  python3 tools/serve_load.py --spawn build-cuda/sinkstream --random-model wan2.1-1.3b --device cuda
  # the CPU check with the tiny model
  python3 tools/serve_load.py --spawn build/sinkstream --model tests/fixtures/tiny_model --device cpu \\
      --width 64 --height 64 --sessions 1,2 --seconds 6 --warmup 4
"""
import argparse, json, re, signal, subprocess, sys, threading, time, urllib.error, urllib.request


def call(base, method, path, body=None, token=None):
    req = urllib.request.Request(base + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            return json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        raise SystemExit("%s %s -> %d %s" % (method, path, e.code, e.read().decode(errors="replace")))


def gpu_memory_mib(pid):
    """(this server's MiB, every process's MiB, total MiB) from nvidia-smi; None where unknown."""
    own = used = total = None
    try:
        out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20).stdout
        for line in out.splitlines():
            p = [x.strip() for x in line.split(",")]
            if len(p) == 2 and pid and p[0] == str(pid) and p[1].isdigit():
                own = (own or 0) + int(p[1])
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used,memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20).stdout.splitlines()
        if out:
            used, total = [int(float(x)) for x in out[0].split(",")[:2]]
    except (OSError, subprocess.SubprocessError, ValueError):
        pass
    return own, used, total


def run_count(a, base, n, pid):
    ids = []
    try:
        for i in range(n):
            try:
                s = call(base, "POST", "/v1/sessions", {"prompt": "%s %d" % (a.prompt, i), "width": a.width,
                                                        "height": a.height, "fps": a.fps, "unbounded": True,
                                                        "seed": i + 1, "live_view": not a.no_live_view}, a.token)
            except SystemExit as e:  # e.g. out of device memory: this count is not sustained
                return {"sessions": n, "real_time": False, "error": "session %d of %d: %s" % (i + 1, n, e),
                        "min_fps": 0, "max_lag_s": 0, "max_lag_growth": 0, "gpu_mib_server": None,
                        "gpu_mib_used": None, "gpu_mib_total": None, "per_session": []}
            ids.append(s["id"])
        time.sleep(a.warmup)
        first = {i: call(base, "GET", "/v1/sessions/" + i, token=a.token) for i in ids}
        t0 = time.time()
        mem_peak = [None, None, None]
        while time.time() - t0 < a.seconds:  # GPU memory sampled through the window
            time.sleep(min(2.0, max(0.0, a.seconds - (time.time() - t0))))
            mem_peak = [max(v for v in (x, y) if v is not None) if (x, y) != (None, None) else None
                        for x, y in zip(mem_peak, gpu_memory_mib(pid))]
        last = {i: call(base, "GET", "/v1/sessions/" + i, token=a.token) for i in ids}
        dt = time.time() - t0
        per = []
        for i in ids:
            f, l = first[i], last[i]
            growth = (l["lag_s"] - f["lag_s"]) / dt  # seconds of lag per second: 0 when on pace
            per.append({"id": i[:8], "fps": round((l["frame"] - f["frame"]) / dt, 2), "lag_s": l["lag_s"],
                        "lag_growth": round(growth, 3), "gen_fps": l["gen_fps"], "chunk_ms": l["chunk_ms"],
                        "state": l["state"]})
        # real time: every session running, its lag not growing, and its rate delivered (within
        # what one chunk more or less in the window makes)
        min_fps = min(p["fps"] for p in per)
        ok = all(p["state"] == "running" and p["lag_growth"] < a.max_growth for p in per) and \
            min_fps >= a.fps * (1 - a.fps_tolerance)
        return {"sessions": n, "real_time": ok, "size": "%dx%d" % (a.width, a.height), "fps_target": a.fps,
                "min_fps": min_fps, "mean_fps": round(sum(p["fps"] for p in per) / n, 2),
                "max_lag_s": max(p["lag_s"] for p in per), "max_lag_growth": max(p["lag_growth"] for p in per),
                "gpu_mib_server": mem_peak[0], "gpu_mib_used": mem_peak[1], "gpu_mib_total": mem_peak[2],
                "seconds": round(dt, 1), "per_session": per}
    finally:
        for i in ids:
            try:
                call(base, "DELETE", "/v1/sessions/" + i, token=a.token)
            except (Exception, SystemExit) as e:  # report, go on deleting the others
                print("delete %s: %s" % (i[:8], e), file=sys.stderr)


def table(rows):
    head = ("sessions", "fps per session", "min fps", "lag s (growth s/s)", "real time", "GPU MiB")
    lines = []
    for r in rows:
        mem = "-" if r["gpu_mib_server"] is None and r["gpu_mib_used"] is None else \
            "%s (all: %s / %s)" % (r["gpu_mib_server"] if r["gpu_mib_server"] is not None else "?",
                                   r["gpu_mib_used"], r["gpu_mib_total"])
        if r.get("error"):
            lines.append((str(r["sessions"]), "(could not start: see the log)", "-", "-", "no", "-"))
            continue
        lines.append((str(r["sessions"]), " ".join("%.1f" % p["fps"] for p in r["per_session"]),
                      "%.1f" % r["min_fps"], "%.2f (%+.3f)" % (r["max_lag_s"], r["max_lag_growth"]),
                      "yes" if r["real_time"] else "no", mem))
    w = [max(len(h), *(len(l[i]) for l in lines)) for i, h in enumerate(head)]
    out = ["| " + " | ".join(h.ljust(w[i]) for i, h in enumerate(head)) + " |",
           "|" + "|".join("-" * (x + 2) for x in w) + "|"]
    out += ["| " + " | ".join(c.ljust(w[i]) for i, c in enumerate(l)) + " |" for l in lines]
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.split("\n")[1:]))
    ap.add_argument("--url", help="a running server")
    ap.add_argument("--spawn", metavar="SINKSTREAM", help="start this sinkstream binary's serve")
    ap.add_argument("--model", metavar="DIR", help="with --spawn: the model directory")
    ap.add_argument("--random-model", metavar="NAME",
                    help="with --spawn: random weights of this shape (wan2.1-1.3b, tiny, ...) instead of --model")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--port", type=int, default=0, help="with --spawn (0: any free port)")
    ap.add_argument("--token")
    ap.add_argument("--sessions", default="1,2,3,4", help="session counts to try, in order")
    ap.add_argument("--width", type=int, default=832)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--fps", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=20, help="measured time per count")
    ap.add_argument("--warmup", type=float, default=8, help="seconds before measuring")
    ap.add_argument("--max-growth", type=float, default=0.02, help="lag growth (s/s) still counted as on pace")
    ap.add_argument("--fps-tolerance", type=float, default=0.1,
                    help="a session delivering at least (1 - this) x --fps counts as on pace")
    ap.add_argument("--prompt", default="a cat surfing a wave", help="session i gets \"PROMPT i\"")
    ap.add_argument("--no-live-view", action="store_true", help="sessions without the fMP4/MJPEG encode")
    ap.add_argument("--stop-after-fail", action="store_true", help="skip larger counts once one falls behind")
    ap.add_argument("--json", metavar="FILE", help="also write every figure here")
    a = ap.parse_args()
    if not a.url and not a.spawn:
        ap.error("give --url of a running server or --spawn SINKSTREAM")
    if a.spawn and bool(a.model) == bool(a.random_model):
        ap.error("--spawn needs one of --model DIR and --random-model NAME")
    counts = [int(x) for x in a.sessions.split(",")]
    server, pid, base, log = None, None, a.url, []
    if a.spawn:
        cmd = [a.spawn, "serve", "--device", a.device, "--port", str(a.port), "--max-sessions", str(max(counts))]
        cmd += ["--model", a.model] if a.model else ["--random-model", a.random_model]
        if a.token:
            cmd += ["--token", a.token]
        print("starting:", " ".join(cmd), file=sys.stderr, flush=True)
        server = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        pid = server.pid
        port = None
        for line in server.stderr:
            sys.stderr.write(line)
            log.append(line)
            m = re.search(r"ready on http://[^:/]+:(\d+)/", line)
            if m:
                port = int(m.group(1))
                break
        if port is None:
            server.wait(30)
            sys.exit("the server did not start (exit %s): %s" % (server.returncode, "".join(log[-20:])))
        base = "http://127.0.0.1:%d" % port

        def drain():  # keep reading its log, or a full pipe would stop the server
            for line in server.stderr:
                sys.stderr.write(line)
        threading.Thread(target=drain, daemon=True).start()
    results = []
    try:
        info = call(base, "GET", "/v1/server", token=a.token)
        print("server: %s on %s" % (info.get("model"), info.get("device")), file=sys.stderr, flush=True)
        for n in counts:
            r = run_count(a, base, n, pid)
            results.append(r)
            print(json.dumps(r), file=sys.stderr, flush=True)
            if a.stop_after_fail and not r["real_time"]:
                break
        best = max([r["sessions"] for r in results if r["real_time"]] or [0])
        print(table(results))
        print("real-time sessions sustained: %d (%dx%d at %d fps, %s on %s)" %
              (best, a.width, a.height, a.fps, info.get("model"), info.get("device")), flush=True)
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"max_real_time_sessions": best, "size": "%dx%d" % (a.width, a.height), "fps": a.fps,
                           "server": info, "counts": results}, f, indent=1)
    finally:
        if server:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(120)
            except subprocess.TimeoutExpired:
                server.kill()


if __name__ == "__main__":
    main()
