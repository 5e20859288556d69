"""World coordinates: the gwcs of an exposure from its pointing and reference files."""
