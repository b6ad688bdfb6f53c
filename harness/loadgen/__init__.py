"""The LoadGen glue: test settings, query sample library, SUT adapter, results."""
