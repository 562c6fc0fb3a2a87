#!/usr/bin/python3
"""The built-in noise generator of sinkstream, reimplemented in NumPy from its published
contract (docs/TESTING.md "noise", the comment of runtime/core/noise.h) and from the
Philox4x32-10 definition of Salmon et al., "Parallel random numbers: as easy as 1, 2, 3"
(SC'11), checked here against Random123's known-answer vectors. Not a port of the C code:
it is vectorised over elements and written from the description, so a fixture run that
uses it (make_kv_policy_fixtures.py: *_philox runs) checks the C generator end to end.

The contract:
  key     = (seed & 0xffffffff, seed >> 32)
  counter = (pair & 0xffffffff, pair >> 32, latent frame, stream), pair = element // 2
            stream 0: a frame's initial noise; 1 + k: re-noise after denoising step k
  one Philox4x32-10 call -> words o0..o3
  u1 = (((o0 << 21) ^ (o1 >> 11)) + 1)   / 2^53     in (0, 1]
  u2 = (((o2 << 21) ^ (o3 >> 11)) + 0.5) / 2^53
  r = sqrt(-2 ln u1), a = 2 pi u2 (all float64); element 2p = r cos a, 2p+1 = r sin a,
  rounded once to float32. Element = index inside one latent frame [C, H, W] (row-major).

Run as a script it prints the known-answer check.
"""
import numpy as np

M0, M1 = 0xD2511F53, 0xCD9E8D57          # Philox4x32 multipliers (Salmon et al., table 2)
W0, W1 = 0x9E3779B9, 0xBB67AE85          # Weyl key increments (golden ratio, sqrt(3) - 1)
MASK = np.uint64(0xFFFFFFFF)

# Random123 tests/kat_vectors, the three "philox4x32 10" lines: counter, key, expected
KAT = [
    ((0x00000000, 0x00000000, 0x00000000, 0x00000000), (0x00000000, 0x00000000),
     (0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8)),
    ((0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff), (0xffffffff, 0xffffffff),
     (0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd)),
    ((0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344), (0xa4093822, 0x299f31d0),
     (0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1)),
]


def philox4x32_10(c0, c1, c2, c3, k0, k1):
    """Vectorised Philox4x32-10: uint64 arrays holding 32-bit words; returns 4 arrays.
    Key schedule as in Random123: the key is bumped before rounds 2..10."""
    c = [np.asarray(x, dtype=np.uint64) & MASK for x in (c0, c1, c2, c3)]
    k0 = np.uint64(k0) & MASK
    k1 = np.uint64(k1) & MASK
    for r in range(10):
        if r:
            k0 = (k0 + np.uint64(W0)) & MASK
            k1 = (k1 + np.uint64(W1)) & MASK
        p0 = np.uint64(M0) * c[0]              # 32 x 32 -> 64 bits: exact in uint64
        p1 = np.uint64(M1) * c[2]
        c = [((p1 >> np.uint64(32)) ^ c[1] ^ k0) & MASK, p1 & MASK,
             ((p0 >> np.uint64(32)) ^ c[3] ^ k1) & MASK, p0 & MASK]
    return c


def check_kat():
    for ctr, key, want in KAT:
        got = philox4x32_10(*[np.array([x]) for x in ctr], *key)
        got = tuple(int(g[0]) for g in got)
        assert got == want, f"Philox4x32-10 KAT {ctr} {key}: {got} != {want}"


def noise(seed, frame0, frames, stream, elements):
    """float32 [frames, elements]: the generator's values for latent frames
    frame0 .. frame0 + frames - 1 of `stream`."""
    seed = int(seed)
    e = np.arange(elements, dtype=np.uint64)
    pair = e >> np.uint64(1)
    out = np.empty((frames, elements), dtype=np.float32)
    two53 = float(2 ** 53)
    for f in range(frames):
        fr = np.full_like(pair, frame0 + f)
        st = np.full_like(pair, stream)
        o0, o1, o2, o3 = philox4x32_10(pair & MASK, pair >> np.uint64(32), fr, st,
                                       seed & 0xFFFFFFFF, seed >> 32)
        u1 = (((o0 << np.uint64(21)) ^ (o1 >> np.uint64(11))).astype(np.float64) + 1.0) / two53
        u2 = (((o2 << np.uint64(21)) ^ (o3 >> np.uint64(11))).astype(np.float64) + 0.5) / two53
        r = np.sqrt(-2.0 * np.log(u1))
        a = 2.0 * np.pi * u2
        out[f] = np.where((e & np.uint64(1)) == 1, r * np.sin(a), r * np.cos(a)).astype(np.float32)
    return out


def latent_noise(seed, frame0, frames, stream, shape_chw):
    """As noise(), shaped [frames, C, H, W]."""
    C, H, W = shape_chw
    return noise(seed, frame0, frames, stream, C * H * W).reshape(frames, C, H, W)


if __name__ == "__main__":
    check_kat()
    print("Philox4x32-10: the 3 Random123 known-answer vectors match")
    print("seed 7, frame 0, stream 0, elements 0..3:", noise(7, 0, 1, 0, 4)[0])
