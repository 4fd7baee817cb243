"""lmbench's own model families, one module per kind: each module-level :class:`~lmbench.models.family.Family`
is registered under its name (:data:`lmbench.models.family.FAMILIES` imports every module here on first use).

A new family is one more module here (or, outside lmbench, an entry point in the ``lmbench.families`` group).
Keep these modules light: name the class as ``"module:Class"`` so that listing families imports no torch."""
