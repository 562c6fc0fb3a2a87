# generate_tiny.py - the Python example of docs/API.md (tiny test models, CPU).
#   python3 examples/generate_tiny.py tests/fixtures latents.npy
import sys, numpy as np, sinkstream
fx = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures"
eng = sinkstream.Engine(dit=f"{fx}/demo/dit_demo_c16.safetensors", vae=f"{fx}/taehv/taehv_tiny_21.safetensors",
                        text_encoder=f"{fx}/text/umt5_tiny.safetensors", tokenizer=f"{fx}/text/spiece_tiny.model")
with eng.session(frames=6, latent_h=8, latent_w=8, kv_window=6, seed=9) as s:
    s.queue_prompt("A red fox at dawn.", frame=0)
    latents, frames = s.run()  # [6, 16, 8, 8] float32, [21, 64, 64, 3] uint8
print(latents.shape, latents.dtype, frames.shape, frames.dtype)
np.save(sys.argv[2] if len(sys.argv) > 2 else "latents.npy", latents)
eng.close()
