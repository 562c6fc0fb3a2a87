#!/usr/bin/env python3
"""fa3_layout_model.py - the FA3 kernel's data path (cuda/cuda_flash_fa3.cu) emulated in numpy.

Checks that the kernel's address and register arithmetic agree with each other:
TMA's 128-byte swizzle (16-byte chunk c of a 128-byte line at c ^ (line % 8), on
shared-memory address bits, the tile bases 1024-aligned), the wgmma shared-memory
descriptors as the kernel builds them (start >> 4, LBO, SBO; read through CUTLASS's
canonical SW128 layouts, include/cute/atom/mma_traits_sm90_gmma.hpp make_gmma_desc:
K-major ((8,m),2):((8 units,SBO),1 unit), MN-major ((8,n),(8,k)):((1 unit,LBO),(8 units,SBO)),
a unit = 16 bytes), the m64nN accumulator layout (CLayout_64xN: d[4n+e] at row
16 warp + g + 8 (e >= 2), column 8n + 2 t4 + (e & 1)) and the register A fragment of
the P V GEMM (ALayout_64x16: register j at row g + 8 (j & 1), k 2 t4 + 8 (j >> 1)),
the key masking, the exp2 softmax and the split-part combine, against plain attention.
It does not check the hardware: only that the kernel uses one consistent picture of it
(dropping the swizzle on both sides still passes; swapping the V descriptor's LBO/SBO,
the A-fragment row order, the 32-byte k16 step or the mask column fails, checked when
written). Mirror of the kernel by hand: change both together.

usage: /usr/bin/python3 tests/gpu/fa3_layout_model.py   (needs numpy; exit 0: all match)
"""
import sys
import numpy as np

HD, BM = 128, 128


def swz(a):
    return a ^ (((a >> 7) & 7) << 4)


class Smem:
    def __init__(s, nbytes):
        s.v = np.full(nbytes // 2, np.nan, np.float32)  # one value per bf16 slot; NaN = never written

    def tma_box(s, dst, src_rows):  # box {64 dims, 1 head, R rows} -> dst, rows past the data zero
        R = src_rows.shape[0]
        r, c = np.meshgrid(np.arange(R), np.arange(64), indexing="ij")
        s.v[swz(dst + r * 128 + c * 2) // 2] = src_rows[r, c]

    def desc(s, d):  # the kernel's fa3_desc fields back
        start = (d & 0x3FFF) << 4
        lbo = ((d >> 16) & 0x3FFF) << 4
        sbo = ((d >> 32) & 0x3FFF) << 4
        assert (d >> 62) == 1 and ((d >> 49) & 7) == 0
        return start, lbo, sbo

    def kmajor(s, d, rows):  # rows x 16 operand, K-major SW128
        start, _, sbo = s.desc(d)
        m, k = np.meshgrid(np.arange(rows), np.arange(16), indexing="ij")
        a = start + (m % 8) * 128 + (m // 8) * sbo + (k // 8) * 16 + (k % 8) * 2
        return s.v[swz(a) // 2]

    def mnmajor(s, d, n):  # 16 x n operand (K x N), MN-major SW128
        start, lbo, sbo = s.desc(d)
        k, nn = np.meshgrid(np.arange(16), np.arange(n), indexing="ij")
        a = start + (nn % 64) * 2 + (nn // 64) * lbo + (k % 8) * 128 + (k // 8) * sbo
        return s.v[swz(a) // 2]


def fa3_desc(saddr, lbo, sbo):
    return ((saddr & 0x3FFFF) >> 4) | ((lbo >> 4) << 16) | ((sbo >> 4) << 32) | (1 << 62)


def acc_to_frag(S):  # 64 x N matrix -> per thread d[] (the accumulator layout), then back
    N = S.shape[1]
    d = np.zeros((128, N // 2), np.float32)
    for th in range(128):
        w, lane = th // 32, th % 32
        g, t4 = lane // 4, lane % 4
        for n in range(N // 8):
            for e in range(4):
                d[th, 4 * n + e] = S[16 * w + g + 8 * (e >= 2), 8 * n + 2 * t4 + (e & 1)]
    return d


def frag_to_A(d, kk):  # pa[kk][j] as the kernel packs it -> the 64 x 16 A it stands for
    A = np.full((64, 16), np.nan, np.float32)
    for th in range(128):
        w, lane = th // 32, th % 32
        g, t4 = lane // 4, lane % 4
        pa = [(d[th, 8 * kk + 2 * j], d[th, 8 * kk + 2 * j + 1]) for j in range(4)]
        for j in range(4):  # ALayout_64x16
            r = 16 * w + g + 8 * (j & 1)
            k = 2 * t4 + 8 * (j >> 1)
            A[r, k], A[r, k + 1] = pa[j]
    return A


def run_part(q, ranges, h, q0, BN, ST, tb, ntiles, sl2):
    """one CTA (q tile q0, head h, key tiles [tb, tb + ntiles)): returns per consumer
    (o as a 64 x 128 matrix, m, l) before the final normalisation"""
    QB, KB = BM * 256, BN * 256
    base = 1024 * 3  # any 1024-aligned base
    sQ, sK = base, base + QB
    sV = sK + ST * KB
    sm = Smem(sV + ST * KB + 64)
    Nq = q.shape[0]
    qt = np.zeros((BM, HD), np.float32)
    nr = min(BM, Nq - q0)
    qt[:nr] = q[q0:q0 + nr, h]
    sm.tma_box(sQ, qt[:, :64])
    sm.tma_box(sQ + BM * 128, qt[:, 64:])
    tiles_before = [0]
    for k, v in ranges:
        tiles_before.append(tiles_before[-1] + (len(k) + BN - 1) // BN)
    out = []
    for cw in range(2):
        qa = sQ + cw * 64 * 128
        o = np.zeros((64, HD), np.float32)
        m = np.full(64, -np.inf, np.float32)
        l = np.zeros(64, np.float32)
        for t in range(ntiles):
            tg = tb + t
            r = max(i for i in range(len(ranges)) if tiles_before[i] <= tg)
            k, v = ranges[r]
            j0 = (tg - tiles_before[r]) * BN
            st = t % ST
            kt = np.zeros((BN, HD), np.float32)
            vt = np.zeros((BN, HD), np.float32)
            n = min(BN, len(k) - j0)
            kt[:n], vt[:n] = k[j0:j0 + n, h], v[j0:j0 + n, h]
            sm.tma_box(sK + st * KB, kt[:, :64])
            sm.tma_box(sK + st * KB + BN * 128, kt[:, 64:])
            sm.tma_box(sV + st * KB, vt[:, :64])
            sm.tma_box(sV + st * KB + BN * 128, vt[:, 64:])
            # issue_s
            S = np.zeros((64, BN), np.float32)
            kb = sK + st * KB
            for kk in range(HD // 16):
                off = (kk & 3) * 32
                A = sm.kmajor(fa3_desc(qa + (kk >> 2) * (BM * 128) + off, 16, 1024), 64)
                B = sm.kmajor(fa3_desc(kb + (kk >> 2) * (BN * 128) + off, 16, 1024), BN)  # N x K
                S += A @ B.T
            d = acc_to_frag(S)
            # softmax on the fragments (the kernel's per-thread code, rows reduced over the quad)
            nv = len(k) - j0
            for th in range(128):
                t4 = th % 4
                for nn in range(BN // 8):
                    for e in range(4):
                        if nn * 8 + 2 * t4 + (e & 1) >= nv:
                            d[th, 4 * nn + e] = -np.inf
            rows0 = [16 * (th // 32) + (th % 32) // 4 for th in range(128)]
            newm = m.copy()
            for th in range(128):
                r0 = rows0[th]
                newm[r0] = max(newm[r0], d[th, 0::4].max(), d[th, 1::4].max())
                newm[r0 + 8] = max(newm[r0 + 8], d[th, 2::4].max(), d[th, 3::4].max())
            ms = np.where(newm == -np.inf, 0, newm * sl2)
            a = np.where(m == -np.inf, 0, np.exp2(m * sl2 - ms))
            for th in range(128):
                r0 = rows0[th]
                for e in range(4):
                    rr = r0 + 8 * (e >= 2)
                    d[th, e::4] = np.exp2(d[th, e::4] * sl2 - ms[rr])
            ps = np.zeros(64, np.float32)
            for th in range(128):
                r0 = rows0[th]
                ps[r0] += d[th, 0::4].sum() + d[th, 1::4].sum()
                ps[r0 + 8] += d[th, 2::4].sum() + d[th, 3::4].sum()
            l = l * a + ps
            m = newm
            o *= a[:, None]
            # issue_pv with pa from the fragments
            vb = sV + st * KB
            for kk in range(BN // 16):
                A = frag_to_A(d, kk)
                B = sm.mnmajor(fa3_desc(vb + kk * 2048, BN * 128, 1024), HD)
                assert not np.isnan(A).any() and not np.isnan(B).any()
                o += A @ B
        out.append((o, m, l))
    return out


def fa3(q, ranges, BN, ST, nparts, scale):
    Nq, NH = q.shape[0], q.shape[1]
    sl2 = np.float32(scale * 1.4426950408889634)
    nall = sum((len(k) + BN - 1) // BN for k, v in ranges)
    res = np.zeros((Nq, NH, HD), np.float32)
    for h in range(NH):
        for q0 in range(0, Nq, BM):
            parts = []
            for part in range(nparts):
                tb = nall * part // nparts
                nt = nall * (part + 1) // nparts - tb
                parts.append(run_part(q, ranges, h, q0, BN, ST, tb, nt, sl2))
            for cw in range(2):
                if nparts == 1:
                    o, m, l = parts[0][cw]
                else:  # the combine of the last part
                    mm = np.max([p[cw][1] for p in parts], axis=0)
                    o = np.zeros((64, HD), np.float32)
                    l = np.zeros(64, np.float32)
                    for p in parts:
                        w = np.exp2((p[cw][1] - mm) * sl2)
                        l += w * p[cw][2]
                        o += w[:, None] * p[cw][0]
                inv = np.where(l > 0, 1 / l, 0)
                for i in range(64):
                    row = q0 + cw * 64 + i
                    if row < Nq:
                        res[row, h] = o[i] * inv[i]
    return res


def ref(q, ranges, scale):
    k = np.concatenate([k for k, v in ranges])
    v = np.concatenate([v for k, v in ranges])
    s = np.einsum("qhd,khd->hqk", q.astype(np.float64), k) * scale
    s -= s.max(-1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(-1, keepdims=True)
    return np.einsum("hqk,khd->qhd", p, v)


def main():
    rng = np.random.default_rng(5)
    bad = 0
    cases = [(129, 2, [200, 77]), (64, 1, [5, 176, 1, 128]), (200, 1, [300])]
    for Nq, NH, lens in cases:
        q = rng.uniform(-1, 1, (Nq, NH, HD)).astype(np.float32)
        ranges = [(rng.uniform(-1, 1, (n, NH, HD)).astype(np.float32),
                   rng.uniform(-1, 1, (n, NH, HD)).astype(np.float32)) for n in lens]
        scale = 2 / np.sqrt(HD)
        want = ref(q, ranges, scale)
        for BN, ST in ((128, 2), (128, 3), (176, 2)):
            for nparts in (1, 2):
                got = fa3(q, ranges, BN, ST, nparts, scale)
                err = np.abs(got - want).max()
                ok = err < 1e-4
                bad += not ok
                print("q%d %dh keys %s BN %d ST %d parts %d: max abs err %.2e %s" %
                      (Nq, NH, "+".join(map(str, lens)), BN, ST, nparts, err, "ok" if ok else "FAIL"))
    print("fa3_layout_model: %s" % ("FAIL" if bad else "PASS"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
