/* template.c: placeholder, being written. */
