"""Reading and writing FITS images, probability maps and quicklooks."""
