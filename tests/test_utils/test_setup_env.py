import pytest

from mmprockd.utils import setup_env


def test_versions_outside_the_window_warn_with_an_install_hint(monkeypatch):
    real = setup_env.metadata.version

    def fake(name):
        return '3.0.0' if name == 'mmcv' else real(name)

    monkeypatch.setattr(setup_env.metadata, 'version', fake)
    with pytest.warns(
            UserWarning,
            match=r'mmcv==3.0.0 is installed.*'
            r'2.0.0 <= mmcv < 2.2.0.*README.md'):
        problems = setup_env.check_versions()
    assert list(problems) == ['mmcv']


def test_installed_stack_is_inside_the_window():
    assert setup_env.check_versions(warn=False) == {}


def test_missing_mmcv_ops_is_a_clear_error(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_ops(name, *args, **kwargs):
        if name == 'mmcv.ops':
            raise ImportError('libmmcv_ext.so: cannot open shared object')
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, '__import__', no_ops)
    with pytest.raises(RuntimeError, match='MMCV_WITH_OPS=1 pip install'):
        setup_env.check_mmcv_ops()
