"""Tiny inputs for tests and benchmarks (as ``mmdet.testing`` does)."""
import torch


def det_batch(num: int = 2, hw=(128, 160), num_classes: int = 80):
    """A raw detection batch (uint8 images, one box each) for
    ``data_preprocessor(batch, training)``."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    g = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    h, w = hw
    for i in range(num):
        inputs.append(
            torch.randint(0, 255, (3, h, w), dtype=torch.uint8, generator=g))
        ds = DetDataSample(
            metainfo=dict(
                img_shape=hw,
                ori_shape=hw,
                pad_shape=hw,
                scale_factor=(1., 1.),
                batch_input_shape=hw,
                img_id=i))
        ds.gt_instances = InstanceData(
            bboxes=torch.tensor([[10., 12., 70. + 10 * i, 90.]]),
            labels=torch.tensor([i % num_classes]))
        samples.append(ds)
    return dict(inputs=inputs, data_samples=samples)


def seg_batch(num: int = 2,
              hw=(64, 64),
              num_classes: int = 19,
              ignore_rows: int = 0):
    """A raw segmentation batch (uint8 images, random label maps of
    ``num_classes`` classes whose first ``ignore_rows`` rows are 255, the
    ignored label) for ``data_preprocessor(batch, training)``."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for _ in range(num):
        inputs.append(
            torch.randint(0, 255, (3, *hw), dtype=torch.uint8, generator=g))
        sample = SegDataSample(
            metainfo=dict(img_shape=hw, ori_shape=hw, pad_shape=hw))
        gt = torch.randint(0, num_classes, (1, *hw), generator=g)
        gt[:, :ignore_rows] = 255
        sample.gt_sem_seg = PixelData(data=gt)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def cls_batch(labels, size: int = 32):
    """A raw classification batch: a uint8 ``size`` x ``size`` image for
    each of ``labels`` (-1: an unlabelled image), for
    ``data_preprocessor(batch, training)``."""
    from mmpretrain.structures import DataSample
    g = torch.Generator().manual_seed(0)
    inputs = [
        torch.randint(0, 255, (3, size, size), dtype=torch.uint8, generator=g)
        for _ in labels
    ]
    samples = [DataSample().set_gt_label(label) for label in labels]
    return dict(inputs=inputs, data_samples=samples)
