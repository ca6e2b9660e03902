/* image.c: placeholder, being written. */
