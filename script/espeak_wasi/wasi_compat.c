/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * wasi_compat.c - what espeak-ng expects of a C library and WASI's libc does not define.
 * Copyright (C) 2026 Alicia TTS contributors. Part of Alicia TTS; licensed like
 * alicia_espeak.c (GPL-3.0-or-later, see the project's LICENSE).
 *
 * tmpnam(): espeak-ng's sound-icon loader names a temporary file with it when it would convert
 * a sound icon (it never converts: the conversion command is commented out upstream). WASI has
 * no temporary directory. The stub gives a name no file can have, so the loader's next fopen()
 * fails and it reports a file error instead of crashing; phonemization never gets here.
 */

#include <stddef.h>
#include <stdio.h>

char *tmpnam(char *name)
{
	static char none[] = "";

	if (name != NULL) {
		name[0] = '\0';
		return name;
	}
	return none;
}
