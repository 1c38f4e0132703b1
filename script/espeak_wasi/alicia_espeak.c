/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * alicia_espeak.c - Alicia TTS's entry point into espeak-ng built as a WASI reactor module.
 * Copyright (C) 2026 Alicia TTS contributors
 *
 * This program is free software: you can redistribute it and/or modify it under the terms of
 * the GNU General Public License as published by the Free Software Foundation, either
 * version 3 of the License, or (at your option) any later version.
 *
 * This program is distributed in the hope that it will be useful, but WITHOUT ANY WARRANTY;
 * without even the implied warranty of MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.
 * See the GNU General Public License for more details.
 *
 * You should have received a copy of the GNU General Public License along with this program.
 * If not, see <https://www.gnu.org/licenses/>.
 *
 * The host (custom_components/alicia_tts/espeak_wasi.py) calls, in this order:
 *   _initialize()                      wasi-libc's reactor constructor (once);
 *   alicia_init(data_path)             espeak-ng's data directory as the guest sees it;
 *   alicia_set_voice(name)             before phonemizing in a language;
 *   alicia_clause(&cursor, &flags, &phonemes)  until the cursor is 0: one clause each.
 * Strings cross the boundary as NUL-terminated UTF-8 in memory the host obtained with
 * alicia_malloc (and releases with alicia_free). Everything returns espeak-ng's own status
 * codes (0 = ok) so the host can name the cause; alicia_status_message() spells them out.
 * The module keeps espeak-ng's global state: one caller at a time.
 */

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <espeak-ng/espeak_ng.h>
#include <espeak-ng/speak_lib.h>

#define ALICIA_API(name) __attribute__((export_name(name), visibility("default")))

/* The interface's own version: the host refuses a module whose version it does not know. */
#define ALICIA_ESPEAK_ABI 1

static int initialized;

ALICIA_API("alicia_abi_version")
int alicia_abi_version(void)
{
	return ALICIA_ESPEAK_ABI;
}

ALICIA_API("alicia_malloc")
void *alicia_malloc(size_t size)
{
	return malloc(size);
}

ALICIA_API("alicia_free")
void alicia_free(void *pointer)
{
	free(pointer);
}

/* espeak-ng's version string ("1.52.0.1"), valid for the module's life. */
ALICIA_API("alicia_espeak_version")
const char *alicia_espeak_version(void)
{
	const char *path = NULL;
	return espeak_Info(&path);
}

/* What espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, 0) does (piper's bridge),
 * but returning the status instead of exiting the process when the data cannot be loaded. */
ALICIA_API("alicia_init")
int alicia_init(const char *data_path)
{
	espeak_ng_ERROR_CONTEXT context = NULL;
	espeak_ng_STATUS status;

	if (initialized)
		return ENS_OK;
	espeak_ng_InitializePath(data_path);
	status = espeak_ng_Initialize(&context);
	espeak_ng_ClearErrorContext(&context);
	if (status != ENS_OK)
		return (int)status;
	status = espeak_ng_InitializeOutput(ENOUTPUT_MODE_SYNCHRONOUS, 0, NULL);
	if (status == ENS_OK)
		initialized = 1;
	return (int)status;
}

/* espeak_SetVoiceByName: 0 when the voice exists and is loaded. */
ALICIA_API("alicia_set_voice")
int alicia_set_voice(const char *name)
{
	if (!initialized)
		return (int)ENS_NOT_SUPPORTED;
	return (int)espeak_SetVoiceByName(name);
}

/* One clause of the text at *cursor, as espeak_TextToPhonemesWithTerminator gives it (IPA,
 * no separator, no ties: what piper's bridge asks for). *cursor moves past the clause and
 * becomes NULL after the last one; *flags receives espeak-ng's raw terminator flags;
 * *phonemes points at the clause's IPA (NUL-terminated, valid until the next call).
 * Returns the IPA's length in bytes, or -1 when there is nothing to read (the cursor is
 * then NULL, so a host loop always ends). */
ALICIA_API("alicia_clause")
int alicia_clause(const char **cursor, int *flags, const char **phonemes)
{
	const char *ipa;

	*flags = 0;
	*phonemes = NULL;
	if (!initialized || *cursor == NULL) {
		*cursor = NULL;
		return -1;
	}
	ipa = espeak_TextToPhonemesWithTerminator((const void **)cursor, espeakCHARS_AUTO,
	                                          espeakPHONEMES_IPA, flags);
	if (ipa == NULL) {
		*cursor = NULL;
		return -1;
	}
	*phonemes = ipa;
	return (int)strlen(ipa);
}

/* espeak-ng's message for a status code, written into buffer (truncated, NUL-terminated). */
ALICIA_API("alicia_status_message")
void alicia_status_message(int status, char *buffer, size_t length)
{
	if (buffer == NULL || length == 0)
		return;
	espeak_ng_GetStatusCodeMessage((espeak_ng_STATUS)status, buffer, length);
	buffer[length - 1] = '\0';
}
