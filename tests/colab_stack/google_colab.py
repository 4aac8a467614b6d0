"""Stand-in for Colab's ``google.colab`` package, for the Colab-stack run (scripts/colab_stack.py).

Colab's kernel has imported ``google.colab`` before the first cell runs; the course's setup cell and
``preflight()`` read that as "running on Colab". The Colab-stack run installs this file as
``google/colab/__init__.py`` in its environment and imports it from an IPython startup file, as Colab's
kernel does. It has none of Colab's features (drive, userdata, output): the course uses none of them.
"""
