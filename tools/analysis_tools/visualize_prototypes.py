"""Draw where the learned prototypes of a ProC-KD run fire on a photo.

The frozen teacher looks at the image, the trained :class:`PrototypeLearner`
soft-assigns every position of its fused features to the K prototypes, and
each prototype's assignment map is drawn as a heat map over the photo, the
``--num`` prototypes with the most assignment mass first. Prototypes that
learned parts (heads, legs, wheels) light up on those parts.

All maps of a figure share one colour scale, the assignment probability
from 0 to the largest value among the maps shown, and a colour bar gives it
(a white line marks the uniform assignment 1/K): the same colour means the
same probability in every map.

Usage::

    python tools/analysis_tools/visualize_prototypes.py CONFIG CHECKPOINT \
        IMAGE [--out FILE.png] [--work-dir DIR] [--level 0] [--num 12] \
        [--size 320]

``CHECKPOINT`` is a full training checkpoint (``epoch_N.pth``: student and
learner weights; the teacher is never saved and comes from the config). The
PNG goes into the work dir (the checkpoint's folder unless ``--work-dir``):
``WORK_DIR/prototypes/<image>_level<L>.png`` by default, and a relative
``--out`` is taken inside the work dir too.
"""
import argparse
import math
import os
import os.path as osp
import sys
import tempfile
from typing import List, Optional, Sequence, Tuple

# isort: off
# first: its compat fixes must precede any OpenMMLab import
import mmprockd  # noqa: F401
from mmprockd.engine.student_export import make_readable
# isort: on
import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config, DictAction
from PIL import Image

CELL_INCH = 3.0  # width of one grid cell
CBAR_INCH = 1.0  # width of the colour bar column, right of the grid
DPI = 100
CMAP = 'jet'


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description='Heat maps of the learned ProC-KD prototypes on a photo')
    parser.add_argument('config', help='the ProtoDistiller training config')
    parser.add_argument(
        'checkpoint', help='full training checkpoint (epoch_N.pth / iter_N)')
    parser.add_argument('image', help='photo to look at')
    parser.add_argument(
        '--out',
        help='PNG file to write; a relative path is taken inside the work '
        'dir. Default: WORK_DIR/prototypes/<image name>_level<L>.png')
    parser.add_argument(
        '--work-dir',
        help='where relative and default outputs go; default: the '
        'checkpoint\'s folder (the work dir of the run that wrote it)')
    parser.add_argument(
        '--level',
        type=int,
        default=0,
        help='prototype level (index into proto_levels); 0 is the finest')
    parser.add_argument(
        '--num', type=int, default=12, help='prototypes to draw')
    parser.add_argument(
        '--size',
        type=int,
        default=320,
        help='longest side of the resized photo fed to the teacher')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config entries, KEY=VALUE')
    args = parser.parse_args(argv)
    if args.num <= 0 or args.size <= 0:
        parser.error('--num and --size must be positive')
    return args


def output_path(args: argparse.Namespace) -> str:
    """The absolute PNG path: ``--out``, or the default name, inside the
    work dir unless it is absolute."""
    work_dir = args.work_dir or osp.dirname(osp.abspath(args.checkpoint))
    out = args.out
    if not out:
        stem = osp.splitext(osp.basename(args.image))[0]
        out = osp.join('prototypes', f'{stem}_level{args.level}.png')
    return osp.abspath(osp.join(work_dir, out))


def load_state_dict(checkpoint: str) -> dict:
    """The ``state_dict`` of an mmengine training checkpoint.

    A ``weights_only`` load: ``import mmprockd`` allow-lists exactly what
    mmengine's checkpoints hold (``mmprockd/utils/compat.py``).

    Raises:
        InputCheckError: not a checkpoint, naming the file.
    """
    from mmprockd.utils.checkpoint_io import load_checkpoint_file
    ckpt = load_checkpoint_file(checkpoint, 'checkpoint')
    return ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None


def build_distiller(cfg: Config, checkpoint: str) -> torch.nn.Module:
    """The ProtoDistiller of ``cfg`` with the trained weights of
    ``checkpoint`` (teacher weights come from the config).

    Raises:
        FileNotFoundError: the checkpoint does not exist.
        ValueError: the config is not a ProtoDistiller with a learner, or
            the checkpoint does not hold its student and learner weights.
    """
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint {checkpoint!r} does not exist')
    from mmengine.registry import init_default_scope
    from mmengine.utils import import_modules_from_strings

    from mmprockd.registry import MODELS
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    if cfg.model.get('type') not in ('mmprockd.ProtoDistiller',
                                     'ProtoDistiller'):
        raise ValueError(f'{cfg.filename}: the model is '
                         f'{cfg.model.get("type")!r}, not a ProtoDistiller')
    model = MODELS.build(cfg.model)
    if model.learner is None:
        raise ValueError(f'{cfg.filename}: the distiller has no learner '
                         '(prototype branch off), nothing to draw')
    state = load_state_dict(checkpoint)
    if not isinstance(state, dict) or not any(
            k.startswith('learner.') for k in state):
        raise ValueError(
            f'{checkpoint!r} holds no learner weights: pass the full '
            'training checkpoint (epoch_N.pth), not a student-only one')
    state = {
        k[len('module.'):] if k.startswith('module.') else k: v
        for k, v in state.items()
    }
    model.load_state_dict(state, strict=True)
    return model.eval()


def load_image(path: str, size: int) -> Tuple[np.ndarray, torch.Tensor]:
    """The photo, resized so its longest side is ``size``, as uint8 RGB
    ``(H, W, 3)`` and as a float tensor ``(1, 3, H, W)`` in 0..255."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'image {path!r} does not exist')
    img = Image.open(path).convert('RGB')
    scale = size / max(img.size)
    new = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    rgb = np.array(img.resize(new, Image.BILINEAR))
    # (H, W, 3) -> (1, 3, H, W)
    tensor = torch.from_numpy(rgb).permute(2, 0, 1)[None].float()
    return rgb, tensor


@torch.no_grad()
def prototype_maps(model: torch.nn.Module, rgb: torch.Tensor,
                   level: int) -> torch.Tensor:
    """Assignment maps ``(K, h, w)`` of one prototype level.

    ``rgb`` is ``(1, 3, H, W)`` in 0..255; it is normalised like the
    student's input (which the teacher's own preprocessing starts from).
    """
    if not 0 <= level < len(model.proto_levels):
        raise ValueError(f'--level must be in [0, {len(model.proto_levels)})'
                         f', got {level}')
    pre = model.student.data_preprocessor
    mean = getattr(pre, 'mean', None)
    std = getattr(pre, 'std', None)
    x = rgb
    if mean is not None:
        x = (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
    student_feats = model.iface.extract(x)
    sizes = [student_feats[i].shape[-2:] for i in model.proto_levels]
    teacher_feats = model.teacher.from_student_input(x, pre)
    _, assigns = model.learner(teacher_feats, sizes, return_assign=True)
    return assigns[level][0]


def common_norm(maps: torch.Tensor):
    """The one colour scale of a figure: assignment probability from 0 to
    the largest value of ``maps`` (the maps shown).

    Returns:
        matplotlib.colors.Normalize: shared by every heat map and the bar.
    """
    from matplotlib.colors import Normalize
    return Normalize(vmin=0.0, vmax=max(float(maps.max()), 1e-6))


def draw_grid(photo: np.ndarray, maps: torch.Tensor, num: int,
              title: str) -> 'matplotlib.figure.Figure':  # noqa: F821
    """The photo followed by the ``num`` heaviest prototype maps over it,
    all on :func:`common_norm`'s scale, and a colour bar right of them."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    h, w = photo.shape[:2]
    mass = maps.flatten(1).sum(1)
    share = mass / mass.sum()
    order = torch.argsort(mass, descending=True)[:num].tolist()
    norm = common_norm(maps[order])
    # (K, h', w') -> (K, H, W); bilinear stays within the maps' range
    up = F.interpolate(
        maps[None], size=(h, w), mode='bilinear', align_corners=False)[0]
    cells = len(order) + 1
    cols = min(4, cells)
    rows = math.ceil(cells / cols)
    cell_h = CELL_INCH * h / w
    grid_w = cols * CELL_INCH
    fig_w = grid_w + CBAR_INCH
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(fig_w, rows * (cell_h + 0.35)),
        dpi=DPI,
        squeeze=False)
    for ax in axes.flat:
        ax.axis('off')
    axes.flat[0].imshow(photo)
    axes.flat[0].set_title('photo', fontsize=9)
    uniform = 1.0 / maps.shape[0]
    heat_image = None
    for ax, k in zip(axes.flat[1:], order):
        ax.imshow(photo)
        heat_image = ax.imshow(up[k].numpy(), cmap=CMAP, alpha=0.5, norm=norm)
        # the title says how far the peak is above a uniform assignment
        ax.set_title(
            f'#{k}: {100 * float(share[k]):.1f}% of mass, peak '
            f'{float(maps[k].max()) / uniform:.1f}x uniform',
            fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(
        left=0.01 * CELL_INCH / fig_w,
        right=(grid_w - 0.01 * CELL_INCH) / fig_w,
        bottom=0.01,
        top=0.9,
        wspace=0.03)
    # the colour bar: 0.18 in wide, 0.12 in right of the grid; its ticks and
    # label fill the rest of the column
    cax = fig.add_axes([(grid_w + 0.12) / fig_w, 0.06, 0.18 / fig_w, 0.8])
    bar = fig.colorbar(heat_image, cax=cax)
    bar.ax.axhline(uniform, color='white', linewidth=1.5)
    bar.ax.tick_params(labelsize=7)
    bar.set_label(
        f'assignment probability (one scale; white: uniform 1/{len(maps)})',
        fontsize=8)
    return fig


def save_atomic(fig, out: str) -> None:
    """Write the figure as PNG through a temporary file and a rename."""
    folder = osp.dirname(osp.abspath(out))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix='.png')
    os.close(fd)
    try:
        fig.savefig(tmp, format='png', dpi=DPI)
        make_readable(tmp)
        os.replace(tmp, out)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def main(argv: Optional[Sequence[str]] = None) -> str:
    """Run the viewer; returns the written PNG path."""
    args = parse_args(argv)
    for name, path in (('image', args.image), ('checkpoint', args.checkpoint)):
        if not osp.isfile(path):
            raise FileNotFoundError(f'{name} {path!r} does not exist')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model = build_distiller(cfg, args.checkpoint)
    photo, rgb = load_image(args.image, args.size)
    maps = prototype_maps(model, rgb, args.level)
    title = (f'{osp.basename(args.image)}: top {min(args.num, len(maps))} '
             f'of {len(maps)} prototypes, level {args.level} '
             f'({maps.shape[-2]}x{maps.shape[-1]} grid)')
    fig = draw_grid(photo, maps, args.num, title)
    out = output_path(args)
    save_atomic(fig, out)
    print(f'wrote {out}')
    return out


if __name__ == '__main__':
    try:
        main()
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f'visualize_prototypes: {err}')
