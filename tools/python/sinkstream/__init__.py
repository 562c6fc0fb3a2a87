"""sinkstream: the Python binding of sinkstream's C API (runtime/sinkstream.h).

Plain ctypes over libsinkstream.so (no compiled extension). An Engine holds the
loaded models; a Session is one stream made from it. Frames come back as numpy
arrays [T, H, W, 3] uint8, latents as [F, C, H, W] float32.

    import sinkstream
    eng = sinkstream.Engine(dit="dit.safetensors", text_encoder="umt5.safetensors",
                            tokenizer="spiece.model", vae="taew2_1.safetensors")
    with eng.session(frames=6, latent_h=8, latent_w=8, seed=1) as s:
        s.queue_prompt("A red fox at dawn.")
        latents, frames = s.run()

The library is found through $SINKSTREAM_LIB (a path), then next to this file
(pip install ./tools/python copies the one CMake built), then the system's
library path. Threading follows the C header: one thread drives a session;
queue_prompt, stop and status may come from any thread.
"""
import ctypes as C
import ctypes.util
import fractions
import os

import numpy as np

__all__ = ["Engine", "Session", "SinkstreamError", "load_library"]

_STATUS = ["SK_OK", "SK_E_INVALID_ARG", "SK_E_IO", "SK_E_FORMAT", "SK_E_SHAPE", "SK_E_DTYPE",
           "SK_E_OOM", "SK_E_CUDA", "SK_E_FFMPEG", "SK_E_NET", "SK_E_UNSUPPORTED",
           "SK_E_INTERNAL"]
FRAME_NEXT_CHUNK = -1
_SWITCH = {"default": 0, "recache": 1, "hard-cut": 2, "cut": 3}
MAX_STEPS = 64


class SinkstreamError(RuntimeError):
    """A call failed: .status is the sk_status name, the text the library's message."""

    def __init__(self, status, message):
        self.status = _STATUS[status] if 0 <= status < len(_STATUS) else str(status)
        super().__init__("%s: %s" % (self.status, message))


_LATENTS_FN = C.CFUNCTYPE(None, C.c_void_p, C.POINTER(C.c_float), C.c_int64, C.c_int64,
                          C.c_int64, C.c_int64, C.c_int64)
_FRAMES_FN = C.CFUNCTYPE(None, C.c_void_p, C.POINTER(C.c_uint8), C.c_int64, C.c_int64,
                         C.c_int64, C.c_int64)
_PROMPT_FN = C.CFUNCTYPE(None, C.c_void_p, C.c_int64, C.c_char_p, C.c_char_p, C.c_char_p)


class _EngineParams(C.Structure):
    _fields_ = [(n, C.c_char_p) for n in ("model_dir", "dit", "dit_config", "text_encoder",
                                          "tokenizer", "text_encoder_config", "vae",
                                          "vae_variant")] + [("text_len", C.c_int)] + [
        (n, C.c_char_p) for n in ("device", "act_dtype", "dit_dtype")] + [
        ("text_offload", C.c_int), ("vae_overlap", C.c_int), ("gpus", C.c_int),
        ("pp_stages", C.c_int), ("pp_split", C.c_char_p), ("pp_transport", C.c_char_p),
        ("random_model", C.c_char_p), ("random_seed", C.c_uint64), ("random_vae", C.c_int)]


class _EngineInfo(C.Structure):
    _fields_ = [(n, C.c_int64) for n in ("text_dim", "text_len", "latent_channels")] + [
        ("has_dit", C.c_int)] + [(n, C.c_int64) for n in ("dim", "num_layers", "num_heads")] + [
        ("has_text_encoder", C.c_int), ("has_vae", C.c_int), ("pipelined", C.c_int),
        ("device", C.c_char * 32), ("act_dtype", C.c_char * 8), ("family", C.c_char * 32)] + [
        (n, C.c_int64) for n in ("in_channels", "ffn_dim", "freq_dim", "weights_bytes")] + [
        ("vae_stride", C.c_int64), ("model_type", C.c_char * 16)]


class _SessionParams(C.Structure):
    _fields_ = [("frames", C.c_int64), ("chunk", C.c_int64), ("latent_h", C.c_int64),
                ("latent_w", C.c_int64), ("steps", C.c_int * MAX_STEPS), ("n_steps", C.c_int),
                ("shift", C.c_double), ("warp", C.c_int), ("seed", C.c_uint64),
                ("noise_file", C.c_char_p), ("kv_policy", C.c_char_p), ("kv_window", C.c_int64),
                ("kv_sink", C.c_int64), ("rope", C.c_char_p), ("ema_alpha", C.c_double),
                ("kv_compress", C.c_int64), ("kv_recent", C.c_int64), ("recache", C.c_char_p),
                ("prompt_switch", C.c_int), ("decode", C.c_int), ("fps", C.c_int),
                ("on_latents", _LATENTS_FN), ("on_frames", _FRAMES_FN), ("user", C.c_void_p),
                ("dump_steps", C.c_char_p), ("stats", C.c_int), ("profile", C.c_int),
                ("profile_chunk", C.c_int64), ("no_cuda_graphs", C.c_int),
                ("frames_on_device", C.c_int), ("fps_num", C.c_int), ("fps_den", C.c_int),
                ("on_prompt", _PROMPT_FN),
                ("sampler", C.c_char_p), ("num_steps", C.c_int),
                ("shot_rope_offset", C.c_int64), ("shot_clean_recache", C.c_int)]


class _StepInfo(C.Structure):
    _fields_ = [("first_frame", C.c_int64), ("n_frames", C.c_int64),
                ("video_frames", C.c_int64), ("done", C.c_int)]


class _SessionStatus(C.Structure):
    _fields_ = [(n, C.c_int64) for n in ("next_frame", "frames_total", "chunks", "video_frames",
                                         "queued_prompts")] + [
        (n, C.c_int) for n in ("switches", "stopping", "done", "paused")] + [
        ("elapsed_s", C.c_double), ("lag_ms", C.c_double), ("late_frames", C.c_int64),
        ("dropped_frames", C.c_int64)]


class _OutputOpts(C.Structure):
    _fields_ = [("kind", C.c_char_p), ("crf", C.c_int), ("timeout_ms", C.c_int),
                ("reconnect_max_ms", C.c_int), ("queue_frames", C.c_int),
                ("codec", C.c_char_p), ("preset", C.c_char_p), ("bitrate", C.c_int64),
                ("maxrate", C.c_int64), ("bufsize", C.c_int64),
                ("metadata", C.POINTER(C.c_char_p)), ("tee", C.POINTER(C.c_char_p))]


class _InputOpts(C.Structure):  # sk_session_input_opts (video-to-video, docs/INPUTS.md)
    _fields_ = [("strength", C.c_double), ("format", C.c_char_p), ("options", C.c_char_p),
                ("realtime", C.c_int), ("timeout_ms", C.c_int), ("reconnect_max_ms", C.c_int),
                ("queue_frames", C.c_int), ("synthetic", C.c_int),
                ("synthetic_frames", C.c_int64)]


class _InputStatus(C.Structure):  # sk_session_input_status
    _fields_ = [("state", C.c_char * 16), ("kind", C.c_char * 16), ("src_width", C.c_int64),
                ("src_height", C.c_int64), ("src_fps", C.c_double), ("decoded", C.c_int64),
                ("frames", C.c_int64), ("repeated", C.c_int64), ("skipped", C.c_int64),
                ("dropped", C.c_int64), ("used", C.c_int64), ("reconnects", C.c_int),
                ("strength", C.c_double), ("start_step", C.c_int), ("latency_n", C.c_int64),
                ("latency_p50_ms", C.c_double), ("latency_p99_ms", C.c_double),
                ("latency_max_ms", C.c_double), ("error", C.c_char * 256)]


_lib = None
CRF_LOSSLESS = -1  # sk_output_opts.crf for FFmpeg's crf 0 (SK_CRF_LOSSLESS)


def _rate(what, v):
    """bits per second from an int or "2500k" / "6M" / "1.5G" (k = 1000), as the CLI parses."""
    if isinstance(v, str):
        s = v.strip()
        mul = {"k": 1e3, "m": 1e6, "g": 1e9}.get(s[-1:].lower(), 1)
        try:
            v = float(s[:-1] if mul != 1 else s) * mul
        except ValueError:
            raise ValueError("%s %r: not a bit rate (e.g. 2500k, 6M, 800000)" % (what, s)) from None
    v = int(round(v))
    if v < 0:
        raise ValueError("%s: negative bit rate %d" % (what, v))
    return v


def load_library(path=None):
    """Loads libsinkstream.so once (path, $SINKSTREAM_LIB, the package dir, the system)."""
    global _lib
    if _lib is not None:
        return _lib
    here = os.path.dirname(os.path.abspath(__file__))
    cands = [path, os.environ.get("SINKSTREAM_LIB"), os.path.join(here, "libsinkstream.so"),
             ctypes.util.find_library("sinkstream")]
    errors = []
    for c in cands:
        if not c:
            continue
        try:
            lib = C.CDLL(c)
            break
        except OSError as e:
            errors.append("%s: %s" % (c, e))
    else:
        raise OSError("libsinkstream.so not found: build it with CMake (it lands beside the "
                      "`sinkstream` binary) and set SINKSTREAM_LIB=/path/to/libsinkstream.so, "
                      "or reinstall with `pip install ./tools/python` after the build. "
                      + "; ".join(errors))
    P, I64, ST = C.c_void_p, C.c_int64, C.c_int
    sig = {
        "sk_last_error": (C.c_char_p, []),
        "sk_version": (C.c_char_p, []),
        "sk_free": (None, [P]),
        "sk_engine_params_default": (_EngineParams, []),
        "sk_engine_open": (ST, [C.POINTER(_EngineParams), C.POINTER(P)]),
        "sk_engine_close": (ST, [C.POINTER(P)]),
        "sk_engine_get_info": (ST, [P, C.POINTER(_EngineInfo)]),
        "sk_engine_encode_text": (ST, [P, C.c_char_p, C.POINTER(C.POINTER(C.c_float)),
                                       C.POINTER(I64), C.POINTER(I64),
                                       C.POINTER(C.POINTER(C.c_int32)), C.POINTER(C.c_int)]),
        "sk_engine_offload_text": (ST, [P]),
        "sk_session_params_default": (_SessionParams, []),
        "sk_session_create": (ST, [P, C.POINTER(_SessionParams), C.POINTER(P)]),
        "sk_session_queue_prompt_embeds": (ST, [P, C.POINTER(C.c_float), I64, I64, I64, C.c_int,
                                                C.c_char_p]),
        "sk_session_queue_prompt_text": (ST, [P, C.c_char_p, I64, C.c_int]),
        "sk_session_step": (ST, [P, C.POINTER(_StepInfo)]),
        "sk_session_push_latents": (ST, [P, C.POINTER(C.c_float), I64, C.POINTER(_StepInfo)]),
        "sk_session_set_image_latent": (ST, [P, C.POINTER(C.c_float), I64, I64, I64]),
        "sk_session_done": (C.c_int, [P]),
        "sk_session_stop": (None, [P]),
        "sk_session_abort": (None, [P]),
        "sk_session_queue_prompt_deferred": (ST, [P, C.c_char_p, C.c_char_p, C.c_char_p, I64,
                                                  C.c_int]),
        "sk_session_finish": (ST, [P, C.POINTER(_StepInfo)]),
        "sk_session_close": (None, [C.POINTER(P)]),
        "sk_session_latents": (ST, [P, C.POINTER(C.POINTER(C.c_float)), C.POINTER(I64),
                                    C.POINTER(I64)]),
        "sk_session_frames": (ST, [P, C.POINTER(C.POINTER(C.c_uint8)), C.POINTER(I64),
                                   C.POINTER(I64), C.POINTER(I64)]),
        "sk_session_attach_output": (ST, [P, C.c_char_p, C.POINTER(_OutputOpts),
                                          C.POINTER(C.c_int)]),
        "sk_session_detach_output": (ST, [P, C.c_int]),
        "sk_session_get_status": (ST, [P, C.POINTER(_SessionStatus)]),
        "sk_session_input_opts_default": (_InputOpts, []),
        "sk_session_attach_input": (ST, [P, C.c_char_p, C.POINTER(_InputOpts)]),
        "sk_session_get_input_status": (ST, [P, C.POINTER(_InputStatus)]),
    }
    for name, (res, args) in sig.items():
        f = getattr(lib, name)
        f.restype, f.argtypes = res, args
    _lib = lib
    return lib


def _check(st):
    if st != 0:
        raise SinkstreamError(st, _lib.sk_last_error().decode("utf-8", "replace"))


def _b(s):
    return None if s is None else os.fsencode(s) if not isinstance(s, bytes) else s


class Engine:
    """The models on a device: Engine(model_dir=... | dit=..., text_encoder=..., tokenizer=...,
    vae=..., device="cpu", act_dtype=None, dit_dtype=None, ...), the fields of sk_engine_params."""

    def __init__(self, model_dir=None, lib=None, **kw):
        lib = load_library(lib)
        p = lib.sk_engine_params_default()
        keep = []
        kw["model_dir"] = model_dir
        for k, v in kw.items():
            if not hasattr(p, k):
                raise TypeError("Engine: unknown parameter %r" % k)
            if isinstance(v, (str, bytes, os.PathLike)) or v is None:
                v = _b(v)
                keep.append(v)
            setattr(p, k, v)
        h = C.c_void_p()
        _check(lib.sk_engine_open(C.byref(p), C.byref(h)))
        self._h = h
        info = _EngineInfo()
        _check(lib.sk_engine_get_info(h, C.byref(info)))
        self.info = {n: getattr(info, n) for n, _ in _EngineInfo._fields_}
        for n in ("device", "act_dtype", "family", "model_type"):
            self.info[n] = self.info[n].decode()

    def encode_text(self, text):
        """umT5 context float32 [text_len, text_dim] of text."""
        ctx, rows, cols = C.POINTER(C.c_float)(), C.c_int64(), C.c_int64()
        _check(_lib.sk_engine_encode_text(self._h, text.encode(), C.byref(ctx), C.byref(rows),
                                          C.byref(cols), None, None))
        try:
            return np.ctypeslib.as_array(ctx, (rows.value, cols.value)).copy()
        finally:
            _lib.sk_free(ctx)

    def session(self, **kw):
        """A new Session; keywords are sk_session_params fields (steps as a list)."""
        return Session(self, **kw)

    def close(self):
        if getattr(self, "_h", None):
            _check(_lib.sk_engine_close(C.byref(self._h)))
            self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


class Session:
    """One stream of an Engine. queue_prompt, then step() or run()."""

    def __init__(self, engine, **kw):
        lib = load_library()
        p = lib.sk_session_params_default()
        keep = []
        fps = kw.pop("fps", None)
        if fps is not None:  # 16, 29.97, "30000/1001" or a fractions.Fraction
            fr = fractions.Fraction(fps).limit_denominator(1001000) if not isinstance(fps, str) \
                else fractions.Fraction(fps.strip())
            if fr <= 0 or fr > 1000:
                raise ValueError("fps %r: expected a positive rate up to 1000" % (fps,))
            if fr.denominator == 1:
                p.fps = fr.numerator
            else:
                p.fps_num, p.fps_den = fr.numerator, fr.denominator
        for k, v in kw.items():
            if k == "steps":
                if not 1 <= len(v) <= MAX_STEPS:
                    raise ValueError("steps: 1..%d timesteps" % MAX_STEPS)
                for i, t in enumerate(v):
                    p.steps[i] = int(t)
                p.n_steps = len(v)
                continue
            if not hasattr(p, k) or k in ("on_latents", "on_frames", "user", "n_steps"):
                raise TypeError("Session: unknown parameter %r" % k)
            if isinstance(v, (str, bytes, os.PathLike)):
                v = _b(v)
                keep.append(v)
            setattr(p, k, v)
        self.engine = engine
        self._lh, self._lw = p.latent_h, p.latent_w
        h = C.c_void_p()
        _check(lib.sk_session_create(engine._h, C.byref(p), C.byref(h)))
        self._h = h

    def queue_prompt(self, prompt, frame=None, mode="default", label=None):
        """prompt: text (encoded by the engine) or a float32 array [rows, text_dim]. frame: the
        latent frame it applies from (None: the next chunk)."""
        f = FRAME_NEXT_CHUNK if frame is None else int(frame)
        m = _SWITCH[mode]
        if isinstance(prompt, str):
            _check(_lib.sk_session_queue_prompt_text(self._h, prompt.encode(), f, m))
            return
        a = np.ascontiguousarray(prompt, dtype=np.float32)
        if a.ndim == 3 and a.shape[0] == 1:
            a = a[0]
        if a.ndim != 2:
            raise ValueError("prompt embeddings must be [rows, text_dim], got %s" % (a.shape,))
        _check(_lib.sk_session_queue_prompt_embeds(
            self._h, a.ctypes.data_as(C.POINTER(C.c_float)), a.shape[0], a.shape[1], f, m,
            _b(label)))

    def step(self):
        """Makes the next chunk: (latents [n, C, H, W] float32 or None, frames [T, H, W, 3]
        uint8 or None, done)."""
        info = _StepInfo()
        _check(_lib.sk_session_step(self._h, C.byref(info)))
        return self._latents(), self._frames(), bool(info.done)

    def set_image_latent(self, latent):
        """LongLive 2.0 image-to-video: latent [C, H, W] (or [1, C, H, W]) float32, the
        normalised Wan2.2-VAE latent of the picture, becomes latent frame 0. Before the first
        step (docs/INPUTS.md)."""
        a = np.ascontiguousarray(latent, dtype=np.float32)
        if a.ndim == 4 and a.shape[0] == 1:
            a = a[0]
        if a.ndim != 3:
            raise ValueError(f"set_image_latent: expected [C, H, W], got {list(a.shape)}")
        _check(_lib.sk_session_set_image_latent(self._h, a.ctypes.data_as(C.POINTER(C.c_float)),
                                                a.shape[0], a.shape[1], a.shape[2]))

    def push_latents(self, latents):
        """Decodes latents [n, C, H, W] made elsewhere (a decode-only session): frames or None."""
        a = np.ascontiguousarray(latents, dtype=np.float32)
        info = _StepInfo()
        _check(_lib.sk_session_push_latents(self._h, a.ctypes.data_as(C.POINTER(C.c_float)),
                                            a.shape[0], C.byref(info)))
        return self._frames()

    def finish(self):
        """The frames still in the decoder (VAE overlap), outputs closed: frames or None."""
        info = _StepInfo()
        _check(_lib.sk_session_finish(self._h, C.byref(info)))
        return self._frames()

    def run(self):
        """Steps to the end: (latents [F, C, H, W] float32, frames [T, H, W, 3] uint8 or None)."""
        lats, frames = [], []
        while not _lib.sk_session_done(self._h):
            lat, fr, _ = self.step()
            if lat is not None:
                lats.append(lat)
            if fr is not None:
                frames.append(fr)
        fr = self.finish()
        if fr is not None:
            frames.append(fr)
        lat = np.concatenate(lats) if lats else None
        return lat, (np.concatenate(frames) if frames else None)

    def _latents(self):
        ptr, n, f0 = C.POINTER(C.c_float)(), C.c_int64(), C.c_int64()
        _check(_lib.sk_session_latents(self._h, C.byref(ptr), C.byref(n), C.byref(f0)))
        if n.value == 0:
            return None
        c = self.engine.info["latent_channels"]
        return np.ctypeslib.as_array(ptr, (n.value, c, self._lh, self._lw)).copy()

    def _frames(self):
        ptr, n, h, w = C.POINTER(C.c_uint8)(), C.c_int64(), C.c_int64(), C.c_int64()
        st = _lib.sk_session_frames(self._h, C.byref(ptr), C.byref(n), C.byref(h), C.byref(w))
        if st != 0 or n.value == 0:
            return None  # a session without decode has no frames
        return np.ctypeslib.as_array(ptr, (n.value, h.value, w.value, 3)).copy()

    def attach_output(self, path, kind=None, crf=None, codec=None, preset=None, bitrate=0,
                      maxrate=0, bufsize=0, metadata=None, tee=None, timeout_ms=0,
                      reconnect_max_ms=0, queue_frames=0, overwrite=True):
        """Writes the decoded frames to a video file (any container FFmpeg muxes), a live
        stream (rtmp://, srt://, udp://, DIR/NAME.m3u8 for HLS), a PNG dir or .safetensors;
        the fields of sk_output_opts with FFmpeg's names and meanings (docs/OUTPUT.md):
        crf None = the encoder's default, 0 = lossless (x264), 1..63; codec "libx264",
        "libx265", "libsvtav1", "libvpx-vp9", ...; bitrate / maxrate / bufsize in bits per
        second (ints, or "2500k" / "6M"); metadata a dict of container tags; tee more files
        that get the same packets; overwrite=False refuses an existing file (FFmpeg's
        default without -y). Returns the output's id (for detach_output)."""
        if not overwrite and "://" not in str(path) and os.path.exists(path):
            raise FileExistsError("output %r exists; pass overwrite=True to replace it" % path)
        if crf is not None and not 0 <= int(crf) <= 63:
            raise ValueError("crf %r: expected 0 (lossless) .. 63, or None" % crf)
        keep = []

        def strings(items):
            arr = (C.c_char_p * (len(items) + 1))(*[_b(str(x)) for x in items], None)
            keep.append(arr)
            return C.cast(arr, C.POINTER(C.c_char_p))

        o = _OutputOpts(kind=_b(kind), crf=0 if crf is None else (CRF_LOSSLESS if int(crf) == 0
                                                                   else int(crf)),
                        timeout_ms=int(timeout_ms), reconnect_max_ms=int(reconnect_max_ms),
                        queue_frames=int(queue_frames), codec=_b(codec), preset=_b(preset),
                        bitrate=_rate("bitrate", bitrate), maxrate=_rate("maxrate", maxrate),
                        bufsize=_rate("bufsize", bufsize))
        if metadata:
            o.metadata = strings([x for kv in dict(metadata).items() for x in kv])
        if tee:
            o.tee = strings([os.fspath(t) for t in ([tee] if isinstance(tee, (str, os.PathLike))
                                                    else tee)])
        i = C.c_int()
        _check(_lib.sk_session_attach_output(self._h, _b(path), C.byref(o), C.byref(i)))
        return i.value

    def attach_input(self, src=None, strength=0.6, format=None, options=None, realtime=False,
                     timeout_ms=0, reconnect_max_ms=8000, queue_frames=0, synthetic=False,
                     synthetic_frames=0):
        """Video-to-video (docs/INPUTS.md): restyle src (a file, URL, /dev/videoN, lavfi:GRAPH,
        "-"), resampled to the session's fps and size, from the strength's start step. Before
        the first step; the session ends when the input does."""
        o = _lib.sk_session_input_opts_default()
        o.strength = float(strength)
        keep = [_b(format), _b(options)]
        o.format, o.options = keep
        o.realtime, o.timeout_ms, o.reconnect_max_ms = int(realtime), timeout_ms, reconnect_max_ms
        o.queue_frames, o.synthetic, o.synthetic_frames = queue_frames, int(synthetic), \
            synthetic_frames
        _check(_lib.sk_session_attach_input(self._h, _b(src), C.byref(o)))

    def input_status(self):
        """The input's state, frame counts and latency (input frame -> output, ms)."""
        s = _InputStatus()
        _check(_lib.sk_session_get_input_status(self._h, C.byref(s)))
        return {n: (v.decode() if isinstance(v, bytes) else v)
                for n, v in ((n, getattr(s, n)) for n, _ in _InputStatus._fields_)}

    def detach_output(self, output_id):
        _check(_lib.sk_session_detach_output(self._h, output_id))

    def stop(self):
        _lib.sk_session_stop(self._h)

    def abort(self):
        """Stop, and the live outputs stop waiting on the network at once."""
        _lib.sk_session_abort(self._h)

    def queue_prompt_deferred(self, text=None, embeds_file=None, embeds_name=None, frame=None,
                              mode="default"):
        """A prompt checked now, read or encoded when it comes due (bounded cache): text, or
        the tensor embeds_name of the safetensors file embeds_file."""
        f = FRAME_NEXT_CHUNK if frame is None else int(frame)
        _check(_lib.sk_session_queue_prompt_deferred(
            self._h, _b(text) if text is not None else None,
            _b(embeds_file) if embeds_file is not None else None,
            _b(embeds_name) if embeds_name is not None else None, f, _SWITCH[mode]))

    def status(self):
        s = _SessionStatus()
        _check(_lib.sk_session_get_status(self._h, C.byref(s)))
        return {n: getattr(s, n) for n, _ in _SessionStatus._fields_}

    def close(self):
        if getattr(self, "_h", None):
            _lib.sk_session_close(C.byref(self._h))
            self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()
