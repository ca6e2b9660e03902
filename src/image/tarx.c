/* tarx.c: placeholder, being written. */
