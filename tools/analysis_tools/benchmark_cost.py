"""What ProC-KD costs: ms/iter and peak memory of the student alone, the
teacher's inference alone and the ProC-KD step, measured in one run on the
same synthetic batch, with their ratios; and the deployed student with and
without its augment plugin.

For a one-run two-stage config (``DistillScheduleHook(student_start)``)
it also gives what the whole recipe costs against the student's schedule
it is compared with: (branch phase x branch-only step + student phase x
student-phase step) / student phase, in student steps.

Targets: ProC-KD step <= 1.10 x (student step + teacher inference); with
the teacher-feature cache <= 1.05 x student step; [ours] the stage-2 step of
two-stage ProC-KD (a frozen branch, teacher cache warm) is measured too, and
with its outputs cached (``branch_cache``) it should cost <= 1.10 x the
student step; with the branch's own head, the branch-only step of the
one-run form's first phase (``student_paused``, no teacher cache) too; a
deployed student
without the plugin costs exactly the plain student, with the plugin
<= 1.05 x.

Usage::

    python tools/analysis_tools/benchmark_cost.py \
        configs/det/prockd_swin-t_retinanet_r50_fpn_1x_coco_paper.py \
        --size 800 1216 --batch 8 --device cuda --amp
    python tools/analysis_tools/benchmark_cost.py \
        configs/det/prockd_swin-t_retinanet_r50_fpn_1x_coco_paper.py \
        --size 256 384 --batch 2   # CPU

Weights are never downloaded: the teacher and the student start random
(timings do not depend on the values).
"""
import argparse
import copy
import json
import resource
import sys
import time
from typing import Callable, Dict, Optional, Tuple

import torch
from mmengine.config import DictAction


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('config')
    p.add_argument('--batch', type=int, default=2)
    p.add_argument(
        '--size', type=int, nargs=2, default=[256, 384], metavar=('H', 'W'))
    p.add_argument('--iters', type=int, default=10)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument(
        '--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument(
        '--amp',
        action='store_true',
        help='autocast the student (fp16 on CUDA, bf16 on CPU)')
    p.add_argument(
        '--breakdown',
        action='store_true',
        help='also time the parts of the prototype branch: the learner, '
        'augment and adapters (forward and backward) and the second pass of '
        "the student's head on their output (forward and backward)")
    p.add_argument('--out', help='also write the figures as JSON here')
    p.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config keys, e.g. model.distill_fraction=0.25')
    return p.parse_args(argv)


def synthetic_batch(family: str, num: int, hw, num_classes: int):
    """A raw batch for the student's data preprocessor."""
    g = torch.Generator().manual_seed(0)
    h, w = hw
    inputs = [
        torch.randint(0, 255, (3, h, w), dtype=torch.uint8, generator=g)
        for _ in range(num)
    ]
    samples = []
    for i in range(num):
        meta = dict(
            img_shape=(h, w),
            ori_shape=(h, w),
            pad_shape=(h, w),
            scale_factor=(1., 1.),
            batch_input_shape=(h, w))
        if family == 'det':
            from mmdet.structures import DetDataSample
            from mmengine.structures import InstanceData
            s = DetDataSample(metainfo=meta)
            boxes = torch.tensor([[0.1 * w, 0.1 * h, 0.5 * w, 0.6 * h],
                                  [0.4 * w, 0.3 * h, 0.9 * w, 0.9 * h]])
            s.gt_instances = InstanceData(
                bboxes=boxes, labels=torch.tensor([i, i + 1]) % num_classes)
        elif family == 'seg':
            from mmengine.structures import PixelData
            from mmseg.structures import SegDataSample
            s = SegDataSample(metainfo=meta)
            s.gt_sem_seg = PixelData(
                data=torch.randint(0, num_classes, (1, h, w), generator=g))
        else:
            from mmpretrain.structures import DataSample
            s = DataSample(metainfo=meta).set_gt_label(i % num_classes)
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def num_classes_of(model) -> int:
    for name in ('bbox_head', 'decode_head', 'head', 'roi_head'):
        head = getattr(model, name, None)
        if head is None:
            continue
        n = getattr(head, 'num_classes', None)
        if n is None and hasattr(head, 'bbox_head'):
            n = head.bbox_head.num_classes
        if n:
            return int(n)
    return 2


class Meter:
    """Times a step and records the peak memory it needs."""

    def __init__(self, device: str, iters: int, warmup: int) -> None:
        self.device, self.iters, self.warmup = device, iters, warmup

    def _sync(self):
        if self.device.startswith('cuda'):
            torch.cuda.synchronize()

    def __call__(self, step: Callable[[], None]) -> Dict[str, float]:
        for _ in range(self.warmup):
            step()
        self._sync()
        if self.device.startswith('cuda'):
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        else:
            base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        t0 = time.perf_counter()
        for _ in range(self.iters):
            step()
        self._sync()
        ms = (time.perf_counter() - t0) * 1000 / self.iters
        if self.device.startswith('cuda'):
            peak = torch.cuda.max_memory_allocated() / 2**30
        else:  # process high-water mark; only grows, so a lower bound
            peak = resource.getrusage(
                resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30
        return dict(ms=ms, peak_gib=peak, base_gib=base / 2**30)


def strip_plugins(student):
    """A copy of the student with every augment module made an identity."""
    from mmprockd.models.necks.augmented_neck import AugmentedNeck
    from mmprockd.models.plugins import TaskAdaptiveAugment
    plain = copy.deepcopy(student)
    for name, module in list(plain.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, AugmentedNeck):
                setattr(module, child_name, child.neck)
            elif isinstance(child, TaskAdaptiveAugment):
                setattr(module, child_name, torch.nn.Identity())
    return plain


def distilled_since(sampler, mark: tuple) -> str:
    """``'used/seen'`` images the sampler drew since ``mark`` (its
    ``(used, seen)`` before the timed run). With ``distill_fraction`` < 1 the
    images are drawn at random every step, so a timing only means something
    next to this count (warm-up steps included)."""
    return f'{sampler.used - mark[0]}/{sampler.seen - mark[1]}'


def branch_breakdown(model, inputs, samples, meter) -> Dict[str, dict]:
    """Time the prototype branch's parts on the whole batch: learner,
    augment and adapters, then the student's head on their output (each
    forward and backward; teacher features computed once beforehand)."""
    with torch.no_grad():
        teacher_feats = model.teacher.from_student_input(
            inputs, model.student.data_preprocessor)
        feats = tuple(f.detach() for f in model.iface.extract(inputs))

    def modules():
        out = model.prototype_branch(teacher_feats, feats)
        sum(out[i].float().mean() for i in model.proto_levels).backward()

    with torch.no_grad():
        branch = [
            f.detach() for f in model.prototype_branch(teacher_feats, feats)
        ]

    def head_pass():
        leaves = tuple(f.clone().requires_grad_() for f in branch)
        losses, _ = model.iface.loss(
            inputs, leaves, samples, param_grad=model.proto_head_grad)
        total, _ = model.parse_losses(losses)
        total.backward()

    res = dict(
        branch_modules=meter(modules), branch_head_pass=meter(head_pass))
    model.zero_grad(set_to_none=True)
    return res


def recipe_phases(cfg) -> Optional[Tuple[int, int, str]]:
    """[ours] The branch phase and the student phase of a one-run
    two-stage config (``DistillScheduleHook(student_start=S)`` and a train
    loop of M epochs or iterations): ``(S, M - S, unit)``, or None."""
    hooks = [
        h for h in cfg.get('custom_hooks', []) or []
        if h.get('type') == 'mmprockd.DistillScheduleHook'
        and h.get('student_start')
    ]
    loop = cfg.get('train_cfg', {}) or {}
    total = loop.get('max_epochs') or loop.get('max_iters')
    if not hooks or not total:
        return None
    start = hooks[0]['student_start']
    unit = 'epochs' if loop.get('max_epochs') else 'iterations'
    return start, total - start, unit


def recipe_cost(phases: Tuple[int, int, str], ratios: Dict[str, float],
                cached: bool) -> Optional[float]:
    """[ours] What the whole two-stage recipe costs against the student's
    schedule it is compared with (its student phase's length): ``(S *
    branch-only step + T * student-phase step) / T``, steps in student
    steps; the student-phase step is the cached one when the config caches
    the frozen branch's outputs (``branch_cache``)."""
    branch, student, _ = phases
    phase = ratios.get('frozen_branch_cached_over_student'
                       if cached else 'frozen_branch_over_student')
    if 'branch_only_over_student' not in ratios or phase is None:
        return None
    return (branch * ratios['branch_only_over_student'] +
            student * phase) / student


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmengine.config import Config
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope

    import mmprockd  # noqa: F401
    from mmprockd.models.plugins import TaskAdaptiveAugment
    from mmprockd.registry import MODELS
    from mmprockd.utils.offline import make_offline

    # the weight-init report of every module would bury the figures
    MMLogger.get_current_instance().setLevel('WARNING')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        from mmprockd.preflight import check_cfg_options
        check_cfg_options(cfg, args.cfg_options)
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model = MODELS.build(make_offline(cfg.model)).to(args.device)
    model.init_weights()
    model.train()
    dev = args.device
    fam = model.iface.family
    raw = synthetic_batch(fam, args.batch, args.size,
                          num_classes_of(model.student))
    pre = model.data_preprocessor
    if getattr(pre, 'size', None) is not None:
        # mmseg's preprocessor pads every training batch to the config's
        # crop size; --size must be the size that is measured
        pre.size = tuple(args.size)
    data = pre(raw, True)
    inputs, samples = data['inputs'], data['data_samples']
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad],
                          lr=1e-5,
                          momentum=0.9)
    amp_dtype = torch.float16 if dev.startswith('cuda') else torch.bfloat16

    def train_step(loss_fn):

        def step():
            with torch.autocast(
                    dev.split(':')[0], dtype=amp_dtype, enabled=args.amp):
                losses = loss_fn()
            total, _ = model.parse_losses(losses)
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()

        return step

    meter = Meter(dev, args.iters, args.warmup)
    res = {}
    res['student_step'] = meter(
        train_step(lambda: model.student.loss(inputs, samples)))

    def teacher_only():
        model.teacher.from_student_input(inputs,
                                         model.student.data_preprocessor)

    res['teacher_inference'] = meter(teacher_only)
    sampler = model.sampler
    mark = (sampler.used, sampler.seen)
    res['prockd_step'] = meter(train_step(lambda: model.loss(inputs, samples)))
    res['prockd_step']['distilled_images'] = distilled_since(sampler, mark)
    branch = getattr(model, 'learner', None) is not None
    if args.breakdown and branch:
        res.update(branch_breakdown(model, inputs, samples, meter))
    if getattr(model, 'branch_student', None) is not None:
        # [ours] the branch phase of two-stage ProC-KD in one run
        # (DistillScheduleHook(student_start=...)): only the branch learns
        model.student_paused = True
        res['branch_only_step'] = meter(
            train_step(lambda: model.loss(inputs, samples)))
        model.student_paused = False
    # teacher features reused (a deterministic pipeline): warm cache
    from mmprockd.models.distillers.teacher_cache import TeacherFeatureCache
    for i, sample in enumerate(samples):
        sample.set_metainfo(dict(img_path=f'synthetic_{i}.jpg'))
    model.teacher_cache = TeacherFeatureCache(max_items=args.batch)
    mark = (sampler.used, sampler.seen)
    res['prockd_step_cached'] = meter(
        train_step(lambda: model.loss(inputs, samples)))
    res['prockd_step_cached']['distilled_images'] = distilled_since(
        sampler, mark)
    if branch:
        # [ours] stage 2 of two-stage ProC-KD: a frozen branch teaches
        # (DistillScheduleHook(branch_stop=0)); then its outputs reused
        model.branch_frozen = True
        model.train()
        res['frozen_branch_step'] = meter(
            train_step(lambda: model.loss(inputs, samples)))
        if not model.branch_cache_refusal(model.branch_head):
            model.branch_cache = TeacherFeatureCache(max_items=args.batch)
            res['frozen_branch_step_cached'] = meter(
                train_step(lambda: model.loss(inputs, samples)))
            model.branch_cache = None
        model.branch_frozen = False
    model.teacher_cache = None
    model.eval()
    has_plugin = any(
        isinstance(m, TaskAdaptiveAugment) for m in model.student.modules())
    with torch.no_grad():
        res['deployed_student'] = meter(
            lambda: model.student(inputs, mode='tensor'))
        if has_plugin:
            plain = strip_plugins(model.student).eval()
            res['plain_student'] = meter(lambda: plain(inputs, mode='tensor'))
    ref = res['student_step']['ms'] + res['teacher_inference']['ms']
    ratios = dict(
        prockd_over_student_plus_teacher=res['prockd_step']['ms'] / ref,
        prockd_over_student=res['prockd_step']['ms'] /
        res['student_step']['ms'],
        prockd_cached_over_student=res['prockd_step_cached']['ms'] /
        res['student_step']['ms'])
    for k in ('branch_only_step', 'frozen_branch_step',
              'frozen_branch_step_cached'):
        if k in res:
            ratios[k.replace('_step', '') + '_over_student'] = (
                res[k]['ms'] / res['student_step']['ms'])
    phases = recipe_phases(cfg)
    if phases is not None:
        cost = recipe_cost(phases, ratios,
                           cfg.model.get('branch_cache') is not None)
        if cost is not None:
            ratios['recipe_over_student_schedule'] = cost
    if has_plugin:
        ratios['deployed_with_plugin_over_plain'] = (
            res['deployed_student']['ms'] / res['plain_student']['ms'])
    dev_name = torch.cuda.get_device_name() if dev.startswith(
        'cuda') else 'cpu'
    print(f'config {args.config}  device {dev_name}  batch {args.batch}  '
          f'size {args.size[0]}x{args.size[1]}  amp {args.amp}  '
          f'iters {args.iters}')
    mem = 'peak GiB (CUDA)' if dev.startswith('cuda') else \
        'process peak RSS GiB'
    print(f'{"measurement":<26} {"ms/iter":>10} {mem:>22}')
    for k, v in res.items():
        used = v.get('distilled_images')
        print(f'{k:<26} {v["ms"]:>10.1f} {v["peak_gib"]:>22.2f}' +
              (f'  distilled images {used}' if used else ''))
    for k, v in ratios.items():
        print(f'{k:<36} {v:.3f}')
    if 'recipe_over_student_schedule' in ratios:
        branch, student, unit = phases
        print(f'two-stage recipe: {branch} branch + {student} student '
              f'{unit} = {ratios["recipe_over_student_schedule"]:.2f} x '
              f'the student\'s {student} {unit}')
    if args.out:
        from mmprockd.engine.student_export import atomic_write_text
        figures = dict(
            args=vars(args),
            device=dev_name,
            torch=torch.__version__,
            date=time.strftime('%Y-%m-%d'),
            input_shape=list(inputs.shape),
            phases=phases,
            results=res,
            ratios=ratios)
        atomic_write_text(json.dumps(figures, indent=2), args.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
