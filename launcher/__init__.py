"""The launcher: the ``pywhisk`` command (server roles and admin) and the one composition root.

``launcher.compose`` assembles standalone, controller and invoker from ``Settings`` through the kernel's
backend factories; ``launcher.cli`` runs them as processes (with ``launcher.process``: open-files limit,
signals); ``launcher.admin`` is ``pywhisk admin``. This is the one package that may import every component.
"""
