"""The application layer of MIT-Talk: the console scripts (``mit_talk.cli``) and the end-to-end demo
(``mit_talk.demo``). It sits above every part (``mit_dataset`` <- ``covog_diffusers`` <- ``training`` /
``benchmark``), so it may use all of them and nothing imports it."""
