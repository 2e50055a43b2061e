"""Fake of modules/deepbooru.py: ``model.tag(pil_image)`` -> comma-separated tags."""


class DeepDanbooru:
    def __init__(self):
        self.images = []

    def tag(self, pil_image):
        self.images.append(pil_image)
        return "1girl, solo, smile"


model = DeepDanbooru()
