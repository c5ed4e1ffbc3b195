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
