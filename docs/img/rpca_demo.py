"""Make the pictures of docs/rpca.md: foreground/background separation and convergence.

Run from the repository root: ``python docs/img/rpca_demo.py``.

The "video" is synthetic but built from a real photograph that scikit-learn ships
(``china.jpg``): 80 frames of a grayscale background under a slowly changing
illumination (a rank-2 family: overall brightness and a left-right gradient),
with a moving patch of ``flower.jpg`` as the foreground object and 2 % salt
noise.  Each frame is a column of ``M`` (pixels x frames); robust PCA splits it
into a low-rank background ``L`` and a sparse foreground ``S``.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_sample_image

from sparseopt.decomposition import robust_pca

OUT = Path(__file__).resolve().parent


def gray(img, step):
    g = img[::step, ::step].astype(float) @ np.array([0.299, 0.587, 0.114]) / 255.0
    return g


def make_video(n_frames=80, seed=0):
    rng = np.random.default_rng(seed)
    bg = gray(load_sample_image("china.jpg"), 6)           # 72 x 107
    h, w = bg.shape
    obj = gray(load_sample_image("flower.jpg"), 24)[4:20, 10:30]  # 16 x 20 patch
    oh, ow = obj.shape
    ramp = np.linspace(-1, 1, w)[None, :]
    frames, masks = [], []
    for t in range(n_frames):
        a = 1.0 + 0.25 * np.sin(2 * np.pi * t / n_frames)
        b = 0.15 * np.cos(2 * np.pi * t / n_frames)
        f = bg * a + b * ramp * bg
        y = int(h / 2 - oh / 2 + 20 * np.sin(4 * np.pi * t / n_frames))
        x = int((w - ow) * t / (n_frames - 1))
        f = f.copy()
        f[y:y + oh, x:x + ow] = obj
        fg = np.zeros((h, w), bool)
        fg[y:y + oh, x:x + ow] = True
        salt = rng.random((h, w)) < 0.02
        f[salt] = rng.random(salt.sum())
        frames.append(f)
        masks.append(fg | salt)
    return np.stack([f.ravel() for f in frames], axis=1), (h, w), masks


def main():
    M, (h, w), _ = make_video()
    res = robust_pca(M, random_state=0, sparse_output=False)
    print(f"video {M.shape}: {res.n_iter} iterations, rank(L) = {res.rank}, "
          f"{np.count_nonzero(res.sparse) / res.sparse.size:.1%} of S nonzero, "
          f"{res.timings['total']:.2f} s")
    shown = [5, 40, 70]
    fig, axes = plt.subplots(3, 3, figsize=(7.2, 4.6))
    for j, t in enumerate(shown):
        for i, (img, title) in enumerate([
            (M[:, t], f"frame {t}"),
            (res.low_rank[:, t], "background L"),
            (np.abs(res.sparse[:, t]), "foreground |S|"),
        ]):
            ax = axes[i, j]
            ax.imshow(img.reshape(h, w), cmap="gray" if i < 2 else "magma",
                      vmin=0, vmax=1 if i < 2 else 0.6)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(OUT / "rpca_foreground.png", dpi=80)
    plt.close(fig)

    # convergence of the solvers on the PCP problem (500 x 500)
    rng = np.random.default_rng(0)
    n, r = 500, 25
    L0 = rng.standard_normal((n, r)) @ rng.standard_normal((r, n))
    S0 = np.where(rng.random((n, n)) < 0.05, rng.uniform(-500, 500, (n, n)), 0.0)
    fig, ax = plt.subplots(figsize=(5.2, 3.2))
    for label, kw in [
        ("IALM, randomized partial SVD", {}),
        ("IALM, full SVD", {"svd_method": "full"}),
        ("AccAltProj (rank 25, beta = 1/(8 (mn)^1/4))",
         {"method": "accaltproj", "rank": 25, "beta": 0.125 / np.sqrt(n)}),
    ]:
        out = robust_pca(L0 + S0, random_state=0, sparse_output=False, **kw)
        style = "--" if "full" in label else "-"
        ax.semilogy(np.arange(1, len(out.residual) + 1), out.residual, style,
                    marker="o", ms=3, label=f"{label}: {out.timings['total']:.2f} s")
    ax.axhline(1e-7, color="gray", lw=0.8)
    ax.set_xlabel("iteration")
    ax.set_ylabel("||M - L - S||_F / ||M||_F")
    ax.set_title("500 x 500, rank 25, 5 % gross errors", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(OUT / "rpca_convergence.png", dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    main()
