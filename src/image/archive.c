/* archive.c: placeholder, being written. */
