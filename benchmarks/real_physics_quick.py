"""Quick real-physics check at 64×64 (8 full-size NIH originals, evaluation only): blur at 1024² by 16·σ_64 px
(mirrored), noise, 8-bit, area-resize to 64²; DDRM (1 sample, bundle settings) with the true σ and with the
estimated settings, for the operator padding(s) given (default: reflect,symmetric). Prints one line per condition:

    python benchmarks/real_physics_quick.py [reflect,symmetric]
"""
import glob
import math
import sys

import numpy as np
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter
from xray_restore.cli import FULL_DATA
from xray_restore.locate import DDRM_BUNDLE
from xray_restore.restore import Restorer
from xray_restore.operators import GaussianBlur
torch.set_num_threads(1)
files = sorted(glob.glob(f'{FULL_DATA}/*.png'))[:8]
X = [np.asarray(Image.open(p).convert('L'), dtype=np.float32)/255 for p in files]
def down(a): return torch.nn.functional.adaptive_avg_pool2d(torch.as_tensor(a)[None,None].float(), 64)[0]
def psnr(a,b): return (10*torch.log10(1/((a.clamp(0,1)-b)**2).mean(dim=(1,2,3)))).mean().item()
r = Restorer.from_bundle(DDRM_BUNDLE, force=True)
inf = r.inferer
pads = sys.argv[1].split(',') if len(sys.argv)>1 else ['reflect','symmetric']
for s64 in [1.0, 2.0]:
    for sy in [0.002, 0.01]:
        g = np.random.default_rng(0)
        ys, xs = [], []
        for x in X:
            y = gaussian_filter(x, 16*s64, mode='reflect', truncate=3.0)
            y = y + sy*g.standard_normal(x.shape).astype(np.float32)
            y = np.clip(np.round(y*255),0,255)/255
            ys.append(down(y))
            xs.append(down(x))
        y64, x64 = torch.stack(ys), torch.stack(xs)
        n64 = math.sqrt(sy**2 + (1/(256*math.sqrt(12)))**2)/16
        line = f"s{s64} n{sy} input {psnr(y64,x64):.2f}"
        for pad in pads:
            inf.operator = GaussianBlur(64, 2.0, threshold=inf.operator.threshold, padding=pad)
            gens = [torch.Generator().manual_seed(i) for i in range(8)]
            st = [{"blur_sigma": s64, "sigma_y": n64}]*8
            m,_ = inf.restore(y64, r.network, st, num_samples=1, generator=gens)
            gens = [torch.Generator().manual_seed(i) for i in range(8)]
            st2 = [{"blur_sigma": s64, "sigma_y": max(n64, 1/(256*math.sqrt(12)))}]*8
            m2,_ = inf.restore(y64, r.network, st2, num_samples=1, generator=gens)
            est = inf.settings_for(y64, [8]*8, 256.0)
            gens = [torch.Generator().manual_seed(i) for i in range(8)]
            m3,_ = inf.restore(y64, r.network, est, num_samples=1, generator=gens)
            sh, nh = np.mean([e['blur_sigma'] for e in est]), np.mean([e['sigma_y'] for e in est])
            line += (f" | {pad}: true {psnr(m,x64):.2f} trueσ+floor {psnr(m2,x64):.2f} est {psnr(m3,x64):.2f}"
                     f" (σ̂ {sh:.2f} σy {nh:.4f})")
        print(line, flush=True)
