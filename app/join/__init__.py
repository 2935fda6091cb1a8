"""Remote enrollment (SPEC 10): the public screening link, applicants held for review,
and the consent pages a person signs on their own."""
