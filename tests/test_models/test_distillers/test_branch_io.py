"""The frozen branch's output cache and the branch checkpoint loader
(``mmprockd/models/distillers/branch_io.py``)."""
import pytest
import torch

from mmprockd.models.distillers.branch_io import (BranchOutputs,
                                                  cached_branch_outputs,
                                                  load_branch_checkpoint)
from mmprockd.models.distillers.teacher_cache import TeacherFeatureCache


class _Branch:
    """A branch whose outputs for image ``i`` are known numbers: logits
    ``[i, -i]``, one 1x2x2 map filled with ``i + 0.5`` and one 2x1x1
    assignment ``[i, 1 - i] / 10``; it records the images it ran on."""

    def __init__(self, images):
        self.images = list(images)
        self.ran = []

    def __call__(self, idx):
        ids = [self.images[i] for i in idx.tolist()]
        self.ran.append(ids)
        t = torch.tensor(ids, dtype=torch.float32)
        logits = torch.stack([t, -t], dim=1)
        maps = (t + 0.5).view(-1, 1, 1, 1).expand(-1, 1, 2, 2).clone()
        assigns = torch.stack([t, 1 - t], 1).view(-1, 2, 1, 1) / 10
        return BranchOutputs([logits], [maps], [assigns], [t.view(-1, 1)])


def _outputs(cache, images, keep_maps=True, keep_assigns=True):
    branch = _Branch(images)
    out = cached_branch_outputs(cache, [f'img{i}' for i in images],
                                torch.device('cpu'), branch, 1, keep_maps,
                                keep_assigns)
    return out, branch.ran


def test_cache_runs_the_branch_only_on_the_images_it_lacks():
    cache = TeacherFeatureCache(dtype='fp32')
    out, ran = _outputs(cache, [3, 5])
    assert ran == [[3, 5]]
    assert out.logits[0].tolist() == [[3.0, -3.0], [5.0, -5.0]]
    assert out.maps[0].shape == (2, 1, 2, 2)
    assert out.maps[0][:, 0, 0, 0].tolist() == [3.5, 5.5]
    assert out.assigns[0].flatten().tolist() == pytest.approx(
        [0.3, -0.2, 0.5, -0.4])
    # the teacher features are not returned once the cache is involved
    assert out.teacher_feats is None
    assert len(cache) == 2
    # 5 and 3 are held, 7 is not: the branch runs on 7 alone, and the
    # batch keeps its order
    out, ran = _outputs(cache, [5, 7, 3])
    assert ran == [[7]]
    assert out.logits[0][:, 0].tolist() == [5.0, 7.0, 3.0]
    assert out.maps[0][:, 0, 1, 1].tolist() == [5.5, 7.5, 3.5]
    assert len(cache) == 3
    out, ran = _outputs(cache, [7, 3])
    assert ran == []
    assert out.logits[0][:, 1].tolist() == [-7.0, -3.0]


def test_cache_keeps_maps_and_assignments_only_when_read():
    cache = TeacherFeatureCache(dtype='fp32')
    out, _ = _outputs(cache, [1, 2], keep_maps=False, keep_assigns=False)
    assert len(out.logits) == 1 and out.maps == [] and out.assigns == []
    # what is stored per image: the logits only
    assert [f.shape for f in cache.get_each(['img1'], 'cpu')[0]] == [(2, )]
    cache = TeacherFeatureCache(dtype='fp32')
    out, _ = _outputs(cache, [1, 2], keep_maps=False, keep_assigns=True)
    assert out.maps == []
    assert out.assigns[0].shape == (2, 2, 1, 1)
    assert out.assigns[0][1].flatten().tolist() == pytest.approx([0.2, -0.1])


def test_first_step_is_rounded_like_a_later_hit():
    # 1/3 is not a float16 number: the step that fills the cache returns
    # what a later step reads back, not the full-precision value
    cache = TeacherFeatureCache(dtype='fp16')

    def run(idx):
        logits = torch.full((1, 2), 1.0 / 3.0)
        return BranchOutputs([logits], [], [], None)

    first = cached_branch_outputs(cache, ['a'], torch.device('cpu'), run, 1,
                                  False, False)
    second = cached_branch_outputs(cache, ['a'], torch.device('cpu'), run, 1,
                                   False, False)
    rounded = torch.tensor(1.0 / 3.0).half().float().item()
    assert rounded != 1.0 / 3.0
    assert first.logits[0][0, 0].item() == rounded
    assert torch.equal(first.logits[0], second.logits[0])
    assert first.logits[0].dtype == torch.float32


class _Model(torch.nn.Module):

    def __init__(self, width=3):
        super().__init__()
        self.learner = torch.nn.Linear(2, width)
        self.branch_student = torch.nn.Linear(width, 1)
        self.student = torch.nn.Linear(2, 2)
        self.augment = None


def test_load_branch_checkpoint_loads_the_named_modules_only(tmp_path):
    src, dst = _Model(), _Model()
    for p in src.parameters():
        torch.nn.init.constant_(p, 0.25)
    student_before = dst.student.weight.detach().clone()
    state = {f'module.{k}': v for k, v in src.state_dict().items()}
    path = str(tmp_path / 'branch.pth')
    torch.save({'state_dict': state}, path)
    n = load_branch_checkpoint(dst, path,
                               ('learner', 'augment', 'branch_student'))
    # learner weight + bias, branch_student weight + bias; augment is None
    assert n == 4
    assert torch.equal(dst.learner.weight, torch.full((3, 2), 0.25))
    assert torch.equal(dst.branch_student.bias, torch.full((1, ), 0.25))
    assert torch.equal(dst.student.weight, student_before)


def test_a_branch_checkpoint_brings_no_cache_contents(tmp_path):
    """The caches belong to the run: a full checkpoint keeps them beside
    the state dict (``ExactResumeHook``), and ``branch_ckpt`` reads only
    the state dict."""
    src, dst = _Model(), _Model()
    src.branch_cache = TeacherFeatureCache(dtype='fp32')
    src.branch_cache.put(['img0'], [torch.ones(1, 2)])
    dst.branch_cache = TeacherFeatureCache(dtype='fp32')
    path = str(tmp_path / 'iter_8.pth')
    torch.save(
        dict(
            state_dict=src.state_dict(),
            exact_resume=dict(
                feature_caches=dict(
                    branch_cache=src.branch_cache.state_dict()))), path)
    assert 'branch_cache' not in ' '.join(src.state_dict())
    assert load_branch_checkpoint(dst, path, ('learner', 'branch_student')) \
        == 4
    assert len(dst.branch_cache) == 0


def test_load_branch_checkpoint_refuses_another_branch(tmp_path):
    path = str(tmp_path / 'wide.pth')
    torch.save({'state_dict': _Model(width=4).state_dict()}, path)
    with pytest.raises(
            ValueError,
            match=r'learner.weight: \(4, 2\) in the '
            r'file, \(3, 2\) here'):
        load_branch_checkpoint(_Model(), path, ('learner', 'branch_student'))
    state = {
        k: v
        for k, v in _Model().state_dict().items() if 'branch_student' not in k
    }
    torch.save({'state_dict': state}, path)
    with pytest.raises(ValueError, match='2 tensors missing'):
        load_branch_checkpoint(_Model(), path, ('learner', 'branch_student'))


def test_load_branch_checkpoint_names_an_unreadable_file(tmp_path):
    path = tmp_path / 'broken.pth'
    path.write_bytes(b'not a checkpoint')
    with pytest.raises(RuntimeError, match='broken.pth.*could not be read'):
        load_branch_checkpoint(_Model(), str(path), ('learner', ))
    torch.save([1, 2], str(path))
    with pytest.raises(RuntimeError, match='holds no state dict'):
        load_branch_checkpoint(_Model(), str(path), ('learner', ))
