"""A hospital's own medlearn extension, outside the medlearn package: a task, a model and a transform.

``tests/test_extensions.py`` puts ``tests/extensions`` on ``sys.path`` and names them in a config as
``hospital_ext.task:SepsisFlag``, ``hospital_ext.models:tiny_mlp`` and ``hospital_ext.transforms:ClipOutliers``:
the way a hospital adds its own without forking medlearn (issue 13 item 4).
"""
