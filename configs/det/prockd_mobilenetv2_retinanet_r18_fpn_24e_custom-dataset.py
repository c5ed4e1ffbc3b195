# Recipe: your own data set. Any COCO-format annotation file with your
# classes: name them in `metainfo`, point `data_root`/`ann_file` at your
# files, and give the student's head that many classes. The example is the
# 19 real photos the demo ships (data/prockd_demo), kept to 4 of their
# classes (mmdet keeps the annotations of the classes named in `metainfo`,
# by name), taught by the frozen MobileNetV2 that a registry package ships
# (no download).
_base_ = ['../demo/prockd_mobilenetv2_retinanet_demo.py']

data_root = 'data/prockd_demo/'
metainfo = dict(classes=('person', 'dog', 'horse', 'car'))
num_classes = len(metainfo['classes'])

model = dict(student=dict(bbox_head=dict(num_classes=num_classes)))
train_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='images/')))
val_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='images/')))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator
