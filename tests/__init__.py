"""Tests for Alicia TTS."""
