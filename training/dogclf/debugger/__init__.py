"""SageMaker Debugger for the profiled job: the hook config the Lambda sends (``hook_config``, stdlib
only), the in-script hook (``hook``) and the in-script rules (``rules``).

Import nothing here: the Lambda imports ``dogclf.debugger.hook_config`` from the training-code layer,
where neither torch nor smdebug exists.
"""
