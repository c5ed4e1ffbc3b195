from mmprockd.utils.offline import make_offline


def test_every_download_is_removed():
    cfg = dict(
        type='mmprockd.ProtoDistiller',
        student_ckpt='student.pth',
        student=dict(
            type='EncoderDecoder',
            pretrained='open-mmlab://resnet18_v1c',
            backbone=dict(
                type='ResNet',
                init_cfg=dict(type='Pretrained', checkpoint='x.pth')),
            neck=dict(type='FPN', init_cfg=dict(type='Xavier'))),
        teacher=dict(type='mmprockd.FrozenTeacher', ckpt='https://t.pth'))
    out = make_offline(cfg)
    assert out is cfg
    assert cfg['student_ckpt'] is None
    assert cfg['student']['pretrained'] is None
    assert cfg['student']['backbone']['init_cfg'] is None
    assert cfg['student']['neck']['init_cfg'] == dict(type='Xavier')
    assert cfg['teacher']['ckpt'] is None
