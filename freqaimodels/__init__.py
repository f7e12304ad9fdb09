"""FreqAI prediction models (one class per file, loaded with --freqaimodel-path freqaimodels)."""
