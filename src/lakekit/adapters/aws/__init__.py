"""AWS adapters (``pip install "lakekit[aws]"``): the S3 object store and the Glue catalog.

* :mod:`lakekit.adapters.aws._client`: the settings every AWS adapter shares (region, endpoint,
  profile, keys, retries) and the factory of boto3 clients built from them.
* :mod:`lakekit.adapters.aws._errors`: botocore errors mapped to lakekit's error tree.
* :mod:`lakekit.adapters.aws.object_store`: :class:`S3ObjectStore`.
* :mod:`lakekit.adapters.aws.glue_catalog`: :class:`GlueCatalog`.

Nothing here imports boto3 until an adapter is built.
"""

__all__: list[str] = []
