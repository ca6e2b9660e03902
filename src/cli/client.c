/* client.c: placeholder, being written. */
