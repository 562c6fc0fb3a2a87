"""test_binding.py - the Python binding (tools/python) end to end, run by ctest:
`pip install ./tools/python` into a temporary directory, then examples/generate_tiny.py
whose latents must equal `sinkstream generate --latents-out` for the same arguments bit
for bit, and the binding's error path (a wrong prompt width raises SinkstreamError).
Usage: test_binding.py SOURCE_DIR BUILD_DIR SINKSTREAM_BIN"""
import ctypes as C
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

    # LongLive 2.0 image-to-video: the image latent is frame 0 of the run
    ll2 = fx + "/longlive2"
    eng = sinkstream.Engine(dit=ll2 + "/dit_tiny.safetensors", dit_config=ll2 + "/config.json")
    img = read_safetensors(fx + "/longlive2_i2v/image_latent.safetensors", "image_latent")
    s = eng.session(frames=2, chunk=2, latent_h=4, latent_w=6, sampler="unipc", num_steps=2,
                    kv_policy="multishot", kv_sink=2, kv_window=8)
    try:
        s.set_image_latent(img[:, :16])
        raise AssertionError("a 16-channel image latent was accepted")
    except sinkstream.SinkstreamError as e:
        assert e.status == "SK_E_SHAPE", str(e)
    s.set_image_latent(img)
    s.queue_prompt(read_safetensors(ll2 + "/embeds.safetensors", "context.0"), frame=0)
    lat, _ = s.run()
    assert lat.shape == (2, 48, 4, 6) and lat[0].tobytes() == img[0].tobytes(), lat.shape
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

    # the ctypes mirrors match the C structs: every field's offset and each struct's size
    # (a field appended in runtime/sinkstream.h but not mirrored changes the size), from a
    # program the C compiler builds out of the mirrors' own field names
    mirrors = {"sk_engine_params": sinkstream._EngineParams,
               "sk_engine_info": sinkstream._EngineInfo,
               "sk_session_params": sinkstream._SessionParams,
               "sk_step_info": sinkstream._StepInfo,
               "sk_session_status": sinkstream._SessionStatus,
               "sk_output_opts": sinkstream._OutputOpts,
               "sk_session_input_opts": sinkstream._InputOpts,
               "sk_session_input_status": sinkstream._InputStatus}
    lines = ['#include <stddef.h>', '#include <stdio.h>', '#include "runtime/sinkstream.h"',
             "int main(void) {"]
    for cname, cls in mirrors.items():
        lines.append('printf("%s size %%zu\\n", sizeof(%s));' % (cname, cname))
        for f in cls._fields_:
            lines.append('printf("%s %s %%zu\\n", offsetof(%s, %s));' % (cname, f[0], cname, f[0]))
    lines.append("return 0; }")
    csrc, cexe = os.path.join(tmp, "layout.c"), os.path.join(tmp, "layout")
    with open(csrc, "w") as f:
        f.write("\n".join(lines) + "\n")
    cc = os.environ.get("CC", "cc")
    r = subprocess.run([cc, "-std=c11", "-I", src, "-o", cexe, csrc], capture_output=True,
                       text=True)
    assert r.returncode == 0, "a mirror names a field the C struct lacks:\n" + r.stderr
    got = {}
    for ln in subprocess.run([cexe], capture_output=True, text=True, check=True).stdout.split("\n"):
        if ln:
            cname, field, val = ln.split()
            got[(cname, field)] = int(val)
    n_fields = 0
    for cname, cls in mirrors.items():
        assert C.sizeof(cls) == got[(cname, "size")], \
            "%s: C size %d, ctypes %d: a field added in runtime/sinkstream.h is not mirrored in " \
            "tools/python/sinkstream" % (cname, got[(cname, "size")], C.sizeof(cls))
        for f in cls._fields_:
            off = getattr(cls, f[0]).offset
            assert off == got[(cname, f[0])], "%s.%s: C offset %d, ctypes %d" % (
                cname, f[0], got[(cname, f[0])], off)
            n_fields += 1

    # attach_output with the FFmpeg-style options, a rational fps and overwrite
    eng = sinkstream.Engine(dit=fx + "/demo/dit_demo_c16.safetensors",
                            vae=fx + "/taehv/taehv_tiny_21.safetensors")
    mkv, copy = os.path.join(tmp, "o.mkv"), os.path.join(tmp, "copy.mp4")
    s = eng.session(frames=3, latent_h=8, latent_w=8, kv_window=6, fps="30000/1001")
    s.attach_output(mkv, codec="libx264", preset="ultrafast", crf=0, bitrate="2M",
                    maxrate="3M", bufsize="6M", metadata={"title": "py binding", "seed": 5},
                    tee=[copy])
    s.queue_prompt(np.zeros((4, 64), np.float32), frame=0)
    s.run()
    s.close()
    try:
        s2 = eng.session(frames=3, latent_h=8, latent_w=8, kv_window=6)
        s2.attach_output(mkv, overwrite=False)
        raise AssertionError("overwrite=False replaced an existing file")
    except FileExistsError:
        pass
    s2.close()
    eng.close()
    r = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                        "stream=codec_name,r_frame_rate:format_tags=title,seed", "-of", "json",
                        mkv], capture_output=True, text=True)
    pj = json.loads(r.stdout)
    st, tags = pj["streams"][0], {k.lower(): v for k, v in pj["format"]["tags"].items()}
    assert st["codec_name"] == "h264" and st["r_frame_rate"] == "30000/1001", st
    assert tags.get("title") == "py binding" and tags.get("seed") == "5", tags
    assert os.path.getsize(copy) > 0, "the tee copy is empty"
print("OK: Python latents equal the CLI's bit for bit; video-to-video through the binding; %d "
      "mirrored fields of %d structs match the C layout; attach_output's codec/preset/crf/rates/"
      "metadata/tee/fps/overwrite work" % (n_fields, len(mirrors)))
