"""Train the report's MLP VAE on MNIST with z = 2, and write its figures.

    python examples/train_mlp_mnist.py                 # the report's 15 epochs
    python examples/train_mlp_mnist.py --epochs 1 --train-subset 2048   # a quick look
"""

import argparse

from numpyvae.figures.run_figures import draw_run_figures
from numpyvae.training.train import TrainConfig, train, unique_run_dir

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=15)
parser.add_argument("--train-subset", type=int, default=None, help="train on N images only")
parser.add_argument("--out", default=None, help="run folder [runs/example-mlp-mnist]")
args = parser.parse_args()

config = TrainConfig(arch="mlp", dataset="mnist", latent_dim=2, epochs=args.epochs,
                     train_subset=args.train_subset)
out = args.out or unique_run_dir("runs/example-mlp-mnist")
final = train(config, out)
draw_run_figures(out)
print(f"report: 307 (recon 293 + KL 14); ours: train {final['train']['loss']:.1f}, "
      f"test {final['test']['loss']:.1f}. Figures in {out}/")
