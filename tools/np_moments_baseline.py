# numpy/scipy baseline (usage: python3 tools/np_moments_baseline.py, after tools/make_synthetic_dumps.py /tmp/syn8/dumps): the same per-parameter statistics on data already in RAM (one tensor of the 8 GiB run).
import numpy as np, json, struct, glob, time, scipy.stats as st
files = sorted(glob.glob('/tmp/syn8/dumps/*.safetensors'))
def load(f):
    b = open(f, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8+n])
    name = sorted(k for k in h if k != '__metadata__')[0]; s, t = h[name]['data_offsets']
    return np.frombuffer(b[8+n+s:8+n+t], dtype=np.float32)
V = np.stack([load(f) for f in files], axis=0)          # [snapshots, params], f32, in RAM
raw = V.nbytes
t0 = time.perf_counter()
X = V.astype(np.float64)
mean = X.mean(0); var = X.var(0); std = np.sqrt(var)
skew = st.skew(X, axis=0, bias=True); kurt = st.kurtosis(X, axis=0, fisher=True, bias=True)
mn = X.min(0); mx = X.max(0); amn = X.argmin(0); amx = X.argmax(0)
first = X[0]; last = X[-1]; net = last - first
D = np.diff(X, axis=0); path = np.abs(D).sum(0)
Dc = D - D.mean(0); ac = (Dc[:-1] * Dc[1:]).sum(0) / (Dc * Dc).sum(0)
dt = time.perf_counter() - t0
print(f"numpy/scipy: {raw/2**30:.2f} GiB in RAM ({V.shape[1]} params x {V.shape[0]} snapshots), {dt:.2f} s, {raw/dt/1e6:.0f} MB/s")
