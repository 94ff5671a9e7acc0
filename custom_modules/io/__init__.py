"""Files written all or nothing, safe unpickling, exporters, the Kaggle submission.

Imported by absolute paths only (``custom_modules.io.atomic``): the name is the
standard library's, which a module of this package still gets with ``import io``.
"""
