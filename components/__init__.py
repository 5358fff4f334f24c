"""Thin KFP v2 lightweight components, one per step.

Each component runs in our own image (settings.CPU_IMAGE, which carries the
`imgclf` package and every dependency), is compiled with
install_kfp_package=False and no packages_to_install (no pip at run time), and
only adapts KFP artifacts to the step function in `imgclf.steps.*`. Imports sit
inside the function bodies because KFP ships only the function's source.
"""
