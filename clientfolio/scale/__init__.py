"""Scale-out: the per-customer features and the apply stage on a distributed engine (Spark).

:mod:`clientfolio.scale.frames` writes the features once in the PySpark DataFrame API (run on
Spark, or on DuckDB through SQLFrame); :mod:`clientfolio.scale.spark` runs `analyze` on a Spark
session: features on the executors, the fit on the driver, :meth:`PortfolioState.apply` on every
partition.  It sits at the right end of the flow (it imports features and state), like the pipeline.
"""
