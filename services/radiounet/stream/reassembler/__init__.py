"""The reassembler stage: probability-tile chunks -> a probability map FITS and quicklook.

:mod:`.assembly` gathers a pointing's chunks (pure, no I/O); :mod:`.service`
is the stage that holds the chunks' messages until the map is written.
"""
