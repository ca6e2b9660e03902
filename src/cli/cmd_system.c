/* cmd_system.c: placeholder, being written. */
