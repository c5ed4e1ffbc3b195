"""Strip downloads from a model config (benchmarks and tests run offline)."""


def make_offline(cfg):
    """Remove every download from a model config, in place: teacher
    checkpoints, ``student_ckpt``, ``Pretrained`` init_cfgs and mmseg's
    ``pretrained='open-mmlab://...'`` model argument. Timings and
    shapes do not depend on the weights' values.

    Returns:
        the same config object.
    """

    def walk(node):
        if isinstance(node, dict):
            if node.get('type') in ('mmprockd.FrozenTeacher', 'FrozenTeacher'):
                node['ckpt'] = None
            if node.get('type') in ('mmprockd.ProtoDistiller',
                                    'ProtoDistiller', 'mmprockd.PKDDistiller',
                                    'PKDDistiller'):
                node['student_ckpt'] = None
            if isinstance(node.get('pretrained'), str):
                node['pretrained'] = None
            init = node.get('init_cfg')
            if isinstance(init, dict) and init.get('type') == 'Pretrained':
                node['init_cfg'] = None
            for value in node.values():
                walk(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                walk(value)

    walk(cfg)
    return cfg
