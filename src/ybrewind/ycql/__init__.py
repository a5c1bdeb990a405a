"""YCQL / Apache Cassandra support: schema rendering, exact literals, dump, load, compare.

Modules: ``literals`` (CQL types, wire codec, exact literal text and CSV fields), ``script`` (CQL
script splitter and statement lexer), ``session`` (driver connection, server detection, error
translation), ``schema`` (driver metadata -> model -> ``schema.cql``), ``dump``, ``load``, ``compare``.
"""
