
troot.layer-0"_tf_keras_layer*Q{"class_name": "Dense", "name": "dense", "config": {"name": "dense", "units": 4}}