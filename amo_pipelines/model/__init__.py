"""What travels in the requests' and answers' bodies: response models, inputs validated when
built, the one converter between them and JSON, and the API's documented constants."""
