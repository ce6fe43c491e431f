"""What the entry points run: ``src/train.py`` -> :mod:`srlab.app.train`, ``src/eval.py`` ->
:mod:`srlab.app.evaluate`, ``src/infer.py`` -> :mod:`srlab.app.infer`, ``src/export.py`` ->
:mod:`srlab.app.export`, ``src/compare.py`` -> :mod:`srlab.app.compare`; and the end-of-run
report (:mod:`srlab.app.report`)."""
