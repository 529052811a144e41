"""riskpipe components: custom TFX components and the user modules standard components load."""
