"""containerd-shim-pyrunc-v2: the shim v2 (``io.containerd.pyrunc.v2``) in Python.

``main`` parses containerd's command line; ``start`` spawns the long-lived shim
(``server``), which serves the Task API (``service`` over ``container``/``process``),
reaps children (``reaper``), copies stdio (``stdio``, ``console``, ``pump``) and
forwards events (``events``). ``cleanup`` is the ``delete`` action for a dead shim.
"""
