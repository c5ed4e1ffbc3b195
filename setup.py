"""Install mmprockd. Configs and tools ship inside the package, in
``mmprockd/.mim`` (copied for a normal install, linked for an editable one),
as OpenMMLab packages do, so that :func:`mmprockd.get_config_path` finds them
after ``pip install .``."""
import os
import os.path as osp
import shutil
import sys
from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

# run by Python at start-up from site-packages: lets mmengine resolve
# ``mmprockd::`` config bases before any import (see mmprockd_boot.py)
BOOT_PTH = 'mmprockd_boot.pth'
BOOT_LINE = 'import mmprockd_boot; mmprockd_boot.install()\n'

HERE = osp.dirname(osp.abspath(__file__))
MIM_FILES = ('configs', 'tools')


def readme() -> str:
    with open(osp.join(HERE, 'README.md'), encoding='utf-8') as f:
        return f.read()


def version() -> str:
    scope = {}
    with open(osp.join(HERE, 'mmprockd', 'version.py')) as f:
        exec(compile(f.read(), 'version.py', 'exec'), scope)
    return scope['__version__']


def parse_requirements(name: str) -> list:
    """Requirement lines of ``requirements/<name>``, following ``-r``."""
    reqs = []
    with open(osp.join(HERE, 'requirements', name)) as f:
        for line in f:
            line = line.split('#')[0].strip()
            if not line:
                continue
            if line.startswith('-r '):
                reqs += parse_requirements(line[3:].strip())
            else:
                reqs.append(line)
    return reqs


def add_mim_extension() -> None:
    """Put configs/ and tools/ into mmprockd/.mim before packaging."""
    editable = any(cmd in sys.argv for cmd in ('develop', 'editable_wheel'))
    mim_dir = osp.join(HERE, 'mmprockd', '.mim')
    os.makedirs(mim_dir, exist_ok=True)
    for name in MIM_FILES:
        src, dst = osp.join(HERE, name), osp.join(mim_dir, name)
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if editable:
            os.symlink(osp.relpath(src, mim_dir), dst)
        else:
            shutil.copytree(src, dst)


class BuildPyWithBoot(build_py):
    """Also put ``mmprockd_boot.pth`` at the top of the build, so that the
    wheel installs it into site-packages beside ``mmprockd_boot.py``."""

    def run(self) -> None:
        super().run()
        with open(osp.join(self.build_lib, BOOT_PTH), 'w') as f:
            f.write(BOOT_LINE)

    def get_outputs(self, include_bytecode=True):
        return super().get_outputs(include_bytecode) + [
            osp.join(self.build_lib, BOOT_PTH)
        ]


if __name__ == '__main__':
    add_mim_extension()
    setup(
        name='mmprockd',
        version=version(),
        description='ProC-KD: prototype-guided cross-task knowledge '
        'distillation for OpenMMLab',
        long_description=readme(),
        long_description_content_type='text/markdown',
        keywords='knowledge distillation, cross-task, prototypes, openmmlab',
        packages=find_packages(exclude=('configs', 'tools', 'tests', 'data')),
        py_modules=['mmprockd_boot'],
        cmdclass={'build_py': BuildPyWithBoot},
        include_package_data=True,
        package_data={'mmprockd': ['.mim/**/*', '.mim/**/**/*']},
        python_requires='>=3.8',
        license='Apache License 2.0',
        install_requires=parse_requirements('runtime.txt'),
        extras_require={
            'all':
            parse_requirements('mminstall.txt') +
            parse_requirements('optional.txt'),
            'tests':
            parse_requirements('tests.txt'),
            'mim':
            parse_requirements('mminstall.txt'),
            'optional':
            parse_requirements('optional.txt'),
        },
        zip_safe=False)
