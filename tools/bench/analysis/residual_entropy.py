#!/usr/bin/env python3
"""Entropy bounds of the default predictor's residuals on a real run (what any coder of those residuals can reach).

Reads a run of safetensors snapshots (f32 or bf16), maps each value to the order-preserving integer the `linpred`
stage uses (spec/FORMAT.md §5), takes the order-2 residual r(s) = m(s) - 2 m(s-1) + m(s-2) per parameter (r(0) = m(0),
r(1) = m(1) - m(0)), zigzags it, and prints the ideal size (empirical entropy, no model cost) under several models:

  planes-0     order-0 entropy of each byte plane (what Huffman-only byte-plane coders approach)
  planes-ctx   each byte plane given the byte above it in the same value (a context model over planes)
  len-raw      bit length L of the zigzagged residual coded by its entropy, the L-1 bits below the leading one raw
  len|prev     the same with L coded given the previous snapshot's L of the same parameter (what lenrans does)
  len|prev,t   ... given the previous L and the tensor
  len|prev,e   ... given the previous L and the exponent of the parameter's snapshot-0 value (the ulp scale;
               a decoder knows it from the leading column)
  len|prev,n   ... given the previous L and the L of the neighbouring parameter (p-1) at the same snapshot
  len|prev,e,n ... given all three
  +1 bit       the richest model with the first bit below the leading one coded under the same context too

--sample K keeps one run of 4096 consecutive parameters in every K (neighbours stay neighbours), for runs too large to
hold whole (a 22.7 M-parameter f32 fine-tune of 41 snapshots needs --sample 8 in 24 GiB).

Ratios are raw bits / ideal bits; compare with the measured ratios of the codecs (README). Usage:
  python3 tools/bench/analysis/residual_entropy.py ../shared/data/tiny-gpt
"""
import glob, json, os, struct, sys
import numpy as np


def load(folder, sample=1):
    files = sorted(glob.glob(os.path.join(folder, "*.safetensors")))
    snaps, names, dtype = [], None, None
    for f in files:
        with open(f, "rb") as fh:
            n = struct.unpack("<Q", fh.read(8))[0]
            h = json.loads(fh.read(n))
            base = 8 + n
            data = np.memmap(f, dtype=np.uint8, mode="r")
        ents = sorted(((k, v) for k, v in h.items() if k != "__metadata__"), key=lambda kv: kv[1]["data_offsets"][0])
        dtype = ents[0][1]["dtype"]
        names = [k for k, _ in ents]
        parts = [np.frombuffer(data[base + v["data_offsets"][0]: base + v["data_offsets"][1]], dtype="<u4" if dtype == "F32" else "<u2")
                 for _, v in ents]
        if sample > 1:
            cat = np.concatenate(parts)
            tid = np.repeat(np.arange(len(parts)), [len(p) for p in parts])
            keep = (np.arange(len(cat)) // 4096) % sample == 0
            sizes = np.bincount(tid[keep], minlength=len(parts)).tolist()
            snaps.append(cat[keep].copy())
            del cat
        else:
            sizes = [len(p) for p in parts]
            snaps.append(np.concatenate(parts))
    return np.stack(snaps, axis=1), names, sizes, dtype   # [P, S]


def entropy_bits(counts):
    c = counts[counts > 0].astype(np.float64)
    n = c.sum()
    return float(-(c * np.log2(c / n)).sum())


def cond_entropy_bits(ctx, sym, nsym):
    """Sum over values of -log2 p(sym | ctx), empirical."""
    key = ctx.astype(np.int64) * nsym + sym.astype(np.int64)
    joint = np.bincount(key)
    marg = np.bincount(ctx.astype(np.int64))
    return entropy_bits(joint) - entropy_bits(marg)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    sample = 1
    if "--sample" in sys.argv:
        sample = int(sys.argv[sys.argv.index("--sample") + 1])
        args = [a for a in args if a != str(sample)]
    X, names, sizes, dtype = load(args[0], sample)
    bits = 32 if dtype == "F32" else 16
    ut = np.uint32 if bits == 32 else np.uint16
    it = np.int64
    P, S = X.shape
    X = X.astype(ut)
    sign = (X >> (bits - 1)).astype(ut)
    m = X ^ (sign * ut((1 << (bits - 1)) - 1))                      # monotone map (its own inverse), as Transforms.monotone
    m = m.astype(it)
    r = np.empty_like(m)
    r[:, 0] = m[:, 0]
    if S > 1:
        r[:, 1] = m[:, 1] - m[:, 0]
    if S > 2:
        r[:, 2:] = m[:, 2:] - 2 * m[:, 1:-1] + m[:, :-2]
    r = (r % (1 << bits)).astype(np.uint64)                       # modulo 2^bits, as the codec
    signed = np.where(r >= (1 << (bits - 1)), r.astype(np.int64) - (1 << bits), r.astype(np.int64))
    z = np.where(signed >= 0, 2 * signed, -2 * signed - 1).astype(np.uint64)   # zigzag
    n = P * S
    raw_bits = n * bits
    res = {}
    planes = [((z >> (8 * k)) & 0xFF).astype(np.int64).ravel() for k in range(bits // 8)]
    res["planes-0"] = sum(entropy_bits(np.bincount(p, minlength=256)) for p in planes)
    res["planes-ctx"] = entropy_bits(np.bincount(planes[-1], minlength=256)) + sum(
        cond_entropy_bits(planes[k + 1], planes[k], 256) for k in range(len(planes) - 1))
    L = np.zeros(z.shape, dtype=np.int64)
    zz = z.copy()
    while True:
        nz = zz > 0
        if not nz.any():
            break
        L[nz] += 1
        zz >>= np.uint64(1)
    rawpart = float(np.maximum(L - 1, 0).sum())
    res["len-raw"] = entropy_bits(np.bincount(L.ravel())) + rawpart
    prev = np.concatenate([np.full((P, 1), 33), L[:, :-1]], axis=1)
    res["len|prev"] = cond_entropy_bits(prev.ravel(), L.ravel(), 34) + rawpart
    tid = np.repeat(np.arange(len(sizes)), sizes)[:, None].repeat(S, axis=1)
    res["len|prev,t"] = cond_entropy_bits((tid * 34 + prev).ravel(), L.ravel(), 34) + rawpart
    expo = ((X[:, 0] >> (bits - 9)) & 0xFF).astype(np.int64)[:, None].repeat(S, axis=1)
    res["len|prev,e"] = cond_entropy_bits((expo * 34 + prev).ravel(), L.ravel(), 34) + rawpart
    nbr = np.concatenate([np.full((1, S), 33), L[:-1, :]], axis=0)
    res["len|prev,n"] = cond_entropy_bits((nbr * 34 + prev).ravel(), L.ravel(), 34) + rawpart
    ctx = (expo * 34 + nbr) * 34 + prev
    res["len|prev,e,n"] = cond_entropy_bits(ctx.ravel(), L.ravel(), 34) + rawpart
    # the first bit below the leading one (for L >= 2) coded under (context, L)
    sh = np.maximum(L - 2, 0).astype(np.uint64)
    b1 = np.where(L >= 2, (z >> sh) & np.uint64(1), 0).astype(np.int64)
    res["+1 bit"] = res["len|prev,e,n"] - float((L >= 2).sum()) + cond_entropy_bits((ctx * 34 + L).ravel(), b1.ravel(), 2)
    print(f"{os.path.basename(os.path.normpath(args[0]))}: {P:,} parameters × {S} snapshots, {dtype}"
          + (f" (one run of 4096 parameters in {sample})" if sample > 1 else ""))
    for k, v in res.items():
        print(f"  {k:12s} {v / n:6.2f} bits/value  ratio {raw_bits / v:.3f}")


if __name__ == "__main__":
    main()
