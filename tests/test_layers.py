"""The package's layers: a module imports only from its own layer or lower ones.

``custom_modules`` follows the data's path (its ``__init__`` lists the layers);
an import upwards (a model reaching into inference, a hook into the model zoo)
is how hidden cycles and cross-concern helpers creep back in.
"""
import ast
import os.path as osp
from pathlib import Path

PACKAGE = Path(osp.dirname(osp.dirname(osp.abspath(__file__)))) / 'custom_modules'
LAYERS = ('structures', 'data', 'models', 'evaluation', 'visualization', 'io', 'engine',
          'inference', 'tuning')


def imported_modules(path: Path, root: Path = PACKAGE):
    """``(line, module)`` of every import in ``path`` (below ``root``), functions' bodies too."""
    package = '.'.join(path.relative_to(root.parent).with_suffix('').parts[:-1])
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against the module's package
                base = package.split('.')[:len(package.split('.')) - node.level + 1]
                module = '.'.join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            yield node.lineno, module
            for alias in node.names:  # `from custom_modules import io` names a layer
                yield node.lineno, f'{module}.{alias.name}'


def layer_of(module: str):
    """The layer index of a ``custom_modules`` module; None outside the package."""
    parts = module.split('.')
    if parts[0] != 'custom_modules':
        return None
    if len(parts) == 1:
        return len(LAYERS)  # the package itself imports every layer
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else None


def test_every_module_is_in_a_layer():
    for path in PACKAGE.rglob('*.py'):
        rel = path.relative_to(PACKAGE)
        assert len(rel.parts) == 1 and rel.name == '__init__.py' or rel.parts[0] in LAYERS, \
            f'{path}: not in a layer {LAYERS}'


def test_no_import_from_a_higher_layer():
    problems = []
    for path in sorted(PACKAGE.rglob('*.py')):
        rel = path.relative_to(PACKAGE)
        if len(rel.parts) == 1:  # the package's __init__ registers every layer
            continue
        own = LAYERS.index(rel.parts[0])
        for line, module in imported_modules(path):
            layer = layer_of(module)
            if layer is not None and layer > own:
                above = LAYERS[layer] if layer < len(LAYERS) else 'the whole package'
                problems.append(f'{path.relative_to(PACKAGE.parent)}:{line}: {LAYERS[own]} '
                                f'imports {module} ({above})')
    assert not problems, 'imports from a higher layer:\n' + '\n'.join(problems)


def test_imports_inside_functions_and_relative_ones_are_read(tmp_path):
    bad = tmp_path / 'custom_modules' / 'structures' / 'bad.py'
    bad.parent.mkdir(parents=True)
    bad.write_text('def f():\n    from ..inference.tta import NucleusTTAModel\n'
                   '    import custom_modules\n')
    found = [m for _, m in imported_modules(bad, tmp_path / 'custom_modules')]
    assert found[:2] == ['custom_modules.inference.tta',
                         'custom_modules.inference.tta.NucleusTTAModel']
    assert 'custom_modules' in found
    assert layer_of(found[0]) > LAYERS.index('structures')
    assert layer_of('custom_modules') > layer_of('custom_modules.tuning.tuner')


def test_io_package_does_not_shadow_the_standard_library():
    import io

    import custom_modules.io.exporters  # noqa: F401  (its own `import io` is the stdlib's)
    assert hasattr(io, 'StringIO') and io.__name__ == 'io'
