"""test_binding.py - the Python binding (tools/python) end to end, run by ctest:
`pip install ./tools/python` into a temporary directory, then examples/generate_tiny.py
whose latents must equal `sinkstream generate --latents-out` for the same arguments bit
for bit, and the binding's error path (a wrong prompt width raises SinkstreamError).
Usage: test_binding.py SOURCE_DIR BUILD_DIR SINKSTREAM_BIN"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np

src, build, binary = sys.argv[1:4]
fx = os.path.join(src, "tests", "fixtures")


def read_safetensors(path, name):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        t = head[name]
        assert t["dtype"] == "F32", t
        f.seek(8 + n + t["data_offsets"][0])
        data = f.read(t["data_offsets"][1] - t["data_offsets"][0])
    return np.frombuffer(data, dtype=np.float32).reshape(t["shape"])


with tempfile.TemporaryDirectory() as tmp:
    site = os.path.join(tmp, "site")
    env = dict(os.environ, SINKSTREAM_BUILD_DIR=build, PIP_BREAK_SYSTEM_PACKAGES="1")
    env.pop("SINKSTREAM_LIB", None)
    pkg = os.path.join(tmp, "pkg")  # a copy: the build leaves nothing in the source tree
    shutil.copytree(os.path.join(src, "tools", "python"), pkg,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "*.so", "__pycache__"))
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                        "--no-build-isolation", "--target", site, pkg], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, "pip install ./tools/python failed:\n" + r.stdout + r.stderr
    assert os.path.isfile(os.path.join(site, "sinkstream", "libsinkstream.so")), \
        "the package does not carry libsinkstream.so"
    env = dict(os.environ, PYTHONPATH=site)
    env.pop("SINKSTREAM_LIB", None)
    py_lat = os.path.join(tmp, "py.npy")
    r = subprocess.run([sys.executable, os.path.join(src, "examples", "generate_tiny.py"), fx,
                        py_lat], env=env, capture_output=True, text=True, cwd=tmp)
    if r.returncode != 0 and "SentencePiece" in r.stderr:
        print("SKIP: no SentencePiece in this build")
        sys.exit(0)
    assert r.returncode == 0, "examples/generate_tiny.py failed:\n" + r.stdout + r.stderr
    assert "(6, 16, 8, 8) float32 (21, 64, 64, 3) uint8" in r.stdout, r.stdout
    cli_lat = os.path.join(tmp, "cli.safetensors")
    r = subprocess.run([binary, "generate", "--dit", fx + "/demo/dit_demo_c16.safetensors",
                        "--text-encoder", fx + "/text/umt5_tiny.safetensors", "--tokenizer",
                        fx + "/text/spiece_tiny.model", "--prompt", "A red fox at dawn.",
                        "--frames", "6", "--latent-height", "8", "--latent-width", "8",
                        "--kv-window", "6", "--seed", "9", "--latents-out", cli_lat],
                       capture_output=True, text=True)
    assert r.returncode == 0, "sinkstream generate failed:\n" + r.stderr
    a, b = np.load(py_lat), read_safetensors(cli_lat, "latents")
    assert a.shape == b.shape == (6, 16, 8, 8), (a.shape, b.shape)
    assert a.tobytes() == b.tobytes(), "Python latents != CLI latents (max diff %g)" % \
        float(np.abs(a - b).max())

    # errors come back as exceptions with the library's message
    sys.path.insert(0, site)
    import sinkstream
    eng = sinkstream.Engine(dit=fx + "/dit/dit_tiny.safetensors",
                            dit_config=fx + "/dit/config.json")
    s = eng.session(frames=3, latent_h=8, latent_w=8, kv_window=6)
    try:
        s.queue_prompt(np.zeros((4, 63), np.float32))
        raise AssertionError("a 63-wide prompt was accepted")
    except sinkstream.SinkstreamError as e:
        assert e.status == "SK_E_SHAPE" and "text_dim 64" in str(e), str(e)
    s.queue_prompt(np.zeros((4, 64), np.float32), frame=0)
    lat, frames = s.run()
    assert lat.shape == (3, 4, 8, 8) and frames is None, (lat.shape, frames)
    s.close()
    eng.close()

    # video-to-video: a lavfi input of 20 frames -> 5 latents -> 17 frames, the input's status
    eng = sinkstream.Engine(dit=fx + "/demo/dit_demo_c16.safetensors",
                            vae=fx + "/taehv/taehv_tiny_21.safetensors",
                            text_encoder=fx + "/text/umt5_tiny.safetensors",
                            tokenizer=fx + "/text/spiece_tiny.model")
    s = eng.session(frames=0, latent_h=8, latent_w=8, seed=3)
    s.attach_input("lavfi:testsrc=size=64x64:rate=16:duration=1.25", strength=0.5)
    s.queue_prompt("A red fox at dawn.", frame=0)
    lat, frames = s.run()
    st = s.input_status()
    assert lat.shape == (5, 16, 8, 8) and frames.shape == (17, 64, 64, 3), (lat.shape,
                                                                             frames.shape)
    assert st["used"] == 20 and st["start_step"] == 2 and st["kind"] == "lavfi", st
    assert st["latency_n"] == 17 and st["latency_p50_ms"] > 0, st
    try:
        s2 = eng.session(frames=0, latent_h=8, latent_w=8)
        s2.attach_input("lavfi:testsrc", strength=1.5)
        raise AssertionError("strength 1.5 was accepted")
    except sinkstream.SinkstreamError as e:
        assert "--strength 1.5" in str(e), str(e)
    s2.close()
    s.close()
    eng.close()
print("OK: Python latents equal the CLI's bit for bit; video-to-video through the binding")
