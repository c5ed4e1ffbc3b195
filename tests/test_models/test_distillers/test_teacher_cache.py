import pytest
import torch
from mmdet.structures import DetDataSample
from test_proto_distiller import build, det_batch

from mmprockd.models.distillers.teacher_cache import (TeacherFeatureCache,
                                                      sample_key)


def sample(path, flip=False):
    return DetDataSample(
        metainfo=dict(
            img_path=path,
            img_shape=(8, 8),
            scale_factor=(1., 1.),
            flip=flip,
            flip_direction='horizontal' if flip else None))


def test_key_covers_flip_shape_and_batch_shape():
    a = sample_key(sample('a.jpg'), (32, 32))
    assert a == sample_key(sample('a.jpg'), (32, 32))
    assert a != sample_key(sample('a.jpg', flip=True), (32, 32))
    assert a != sample_key(sample('a.jpg'), (64, 32))
    assert sample_key(DetDataSample(), (8, 8)) is None


def test_get_put_and_lru_eviction():
    cache = TeacherFeatureCache(max_items=2, dtype='fp32')
    f = [torch.arange(8.).view(2, 4), torch.ones(2, 3)]
    cache.put(['a', 'b'], f)
    got = cache.get(['b', 'a'], torch.device('cpu'))
    assert torch.equal(got[0], torch.tensor([[4., 5, 6, 7], [0., 1, 2, 3]]))
    cache.put(['c'], [torch.zeros(1, 4), torch.zeros(1, 3)])
    # 'b' was used last by get(['b', 'a']) -> 'a' is newer; 'b' evicted
    assert len(cache) == 2
    assert cache.get(['b'], torch.device('cpu')) is None
    assert cache.get(['a', 'c'], torch.device('cpu')) is not None
    assert (cache.hits, cache.misses) == (2, 1)


def test_state_dict_round_trip_and_a_smaller_cache_keeps_the_newest():
    cache = TeacherFeatureCache(max_items=3, dtype='bf16')
    cache.put(['a', 'b', 'c'], [torch.arange(6.).view(3, 2)])
    cache.get(['a'], torch.device('cpu'))  # order: b, c, a
    state = cache.state_dict()
    assert state['keys'] == ['b', 'c', 'a']
    assert state['shapes'] == [((2, ), )] * 3
    assert state['data'].tolist() == [2., 3., 4., 5., 0., 1.]
    assert (state['dtype'], state['hits'], state['misses']) == ('bf16', 1, 0)
    same = TeacherFeatureCache(max_items=3, dtype='bf16')
    same.load_state_dict(state)
    assert same.state_dict()['keys'] == ['b', 'c', 'a']
    assert torch.equal(same.state_dict()['data'], state['data'])
    small = TeacherFeatureCache(max_items=2, dtype='bf16')
    small.load_state_dict(state)
    assert list(small._store) == ['c', 'a']  # b was the oldest
    assert small.get(['c'], torch.device('cpu'))[0].tolist() == [[4., 5.]]
    empty = TeacherFeatureCache(dtype='fp16').state_dict()
    assert empty['keys'] == [] and empty['data'].shape == (0, )
    TeacherFeatureCache(dtype='fp16').load_state_dict(empty)


def test_load_state_dict_refuses_data_that_does_not_fit_the_shapes():
    state = TeacherFeatureCache(dtype='fp32').state_dict()
    state.update(keys=['a'], shapes=[((2, 2), )], data=torch.zeros(3))
    with pytest.raises(
            ValueError,
            match='name 1 keys, 1 shape lists and 4 '
            'values, but hold 3'):
        TeacherFeatureCache(dtype='fp32').load_state_dict(state)


def test_distiller_skips_the_teacher_on_a_cache_hit():
    model = build(teacher_cache=dict(max_items=10, dtype='fp32'))
    calls = []
    model.teacher.model.conv1.register_forward_hook(lambda *a: calls.append(1))
    raw = det_batch(2, (64, 96))
    for i, s in enumerate(raw['data_samples']):
        s.set_metainfo(dict(img_path=f'img{i}.jpg', flip=False))
    data = model.data_preprocessor(raw, True)
    first = model._teacher_features(data['inputs'], data['data_samples'])
    second = model._teacher_features(data['inputs'], data['data_samples'])
    assert len(calls) == 1
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_filled_caches_leave_the_state_dict_as_it_is():
    """The caches are not in the model's state dict: a checkpoint's
    ``state_dict``, the student export and ``branch_ckpt`` do not grow."""
    plain = build(branch_head='own')
    model = build(
        branch_head='own',
        teacher_cache=dict(max_items=10, dtype='fp32'),
        branch_cache=dict(max_items=10))
    raw = det_batch(2, (64, 96))
    for i, s in enumerate(raw['data_samples']):
        s.set_metainfo(dict(img_path=f'img{i}.jpg', flip=False))
    data = model.data_preprocessor(raw, True)
    model._teacher_features(data['inputs'], data['data_samples'])
    model.branch_cache.put(['img0.jpg'], [torch.ones(1, 2)])
    assert (len(model.teacher_cache), len(model.branch_cache)) == (2, 1)
    assert list(model.state_dict()) == list(plain.state_dict())


def test_teacher_runs_only_on_the_images_the_cache_lacks():
    """A batch with one cached and one new image runs the teacher on the
    new one alone, and returns the same maps as an uncached teacher."""
    model = build(teacher_cache=dict(max_items=10, dtype='fp32'))
    seen = []
    model.teacher.model.conv1.register_forward_hook(
        lambda m, i, o: seen.append(i[0].shape[0]))
    raw = det_batch(2, (64, 96))
    for i, s in enumerate(raw['data_samples']):
        s.set_metainfo(dict(img_path=f'img{i}.jpg', flip=False))
    data = model.data_preprocessor(raw, True)
    inputs, samples = data['inputs'], data['data_samples']
    model._teacher_features(inputs[1:], samples[1:])  # caches img1
    assert seen == [1]
    got = model._teacher_features(inputs, samples)
    assert seen == [1, 1]  # only img0 ran
    want = model.teacher.from_student_input(inputs,
                                            model.student.data_preprocessor)
    assert [g.shape for g in got] == [w.shape for w in want]
    assert all(torch.allclose(g, w, atol=1e-5) for g, w in zip(got, want))
    assert (model.teacher_cache.hits, model.teacher_cache.misses) == (1, 2)
