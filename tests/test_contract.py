"""The public contract: every name of the API table importable from trainwright.utils with its signature.

CONTRACT is the API table; SG_COMPAT adds the other names SuperGradients 3.1 code imports, with SG's
signatures (and SG_METHODS the methods SG code calls on them). The test fails when a name is missing or
its parameters drift from its table.
"""

import enum
import inspect

import pytest

import trainwright.utils as utils

REQUIRED = inspect.Parameter.empty

# name -> leading parameters as (name, default); None means "no signature to check" (enums, exceptions).
CONTRACT = {
    "get_builtin_activation_type": [("activation", REQUIRED)],
    "batch_distance2bbox": [("points", REQUIRED), ("distance", REQUIRED), ("max_shapes", None)],
    "Phase": None,
    "PhaseContext": [],
    "Callback": [],
    "PhaseCallback": [("phase", REQUIRED)],
    "CallbackHandler": [("callbacks", REQUIRED)],
    "ContextSgMethods": [],
    "LRCallbackBase": [("phase", REQUIRED), ("initial_lr", REQUIRED), ("update_param_groups", REQUIRED),
                       ("train_loader_len", REQUIRED), ("net", REQUIRED), ("training_params", REQUIRED)],
    "EpochStepWarmupLRCallback": [],
    "LinearStepWarmupLRCallback": [],
    "BatchStepLinearWarmupLRCallback": [("warmup_initial_lr", REQUIRED), ("initial_lr", REQUIRED),
                                        ("train_loader_len", REQUIRED), ("update_param_groups", REQUIRED),
                                        ("lr_warmup_steps", REQUIRED), ("training_params", REQUIRED),
                                        ("net", REQUIRED)],
    "CosineLRCallback": [],
    "StepLRCallback": [],
    "PolyLRCallback": [],
    "ExponentialLRCallback": [],
    "FunctionLRCallback": [],
    "LRSchedulerCallback": [("scheduler", REQUIRED), ("phase", REQUIRED), ("metric_name", None)],
    "IllegalLRSchedulerMetric": [("metric_name", REQUIRED), ("metrics_dict", REQUIRED)],
    "TestLRCallback": [("lr_placeholder", REQUIRED)],
    "PhaseContextTestCallback": [("phase", REQUIRED)],
    "DetectionVisualizationCallback": [("phase", REQUIRED), ("freq", REQUIRED),
                                       ("post_prediction_callback", REQUIRED), ("classes", REQUIRED),
                                       ("batch_idx", 0), ("last_img_idx_in_batch", -1)],
    "BinarySegmentationVisualizationCallback": [("phase", REQUIRED), ("freq", REQUIRED), ("batch_idx", 0),
                                                ("last_img_idx_in_batch", -1)],
    "ModelConversionCheckCallback": [("model_name", REQUIRED), ("input_dimensions", REQUIRED),
                                     ("primary_batch_size", REQUIRED)],
    "RoboflowResultCallback": [("dataset_name", REQUIRED), ("output_path", None)],
    "DeciLabUploadCallback": [("model_meta_data", REQUIRED), ("optimization_request_form", REQUIRED),
                              ("ckpt_name", "ckpt_best.pth")],
    "TrainingStageSwitchCallbackBase": [("next_stage_start_epoch", REQUIRED)],
    "YoloXTrainingStageSwitchCallback": [("next_stage_start_epoch", 285)],
    "PPYoloETrainingStageSwitchCallback": [("static_assigner_end_epoch", REQUIRED)],
    "StrictLoad": None,
    "MissingPretrainedWeightsException": [("desc", REQUIRED)],
    "adapt_state_dict_to_fit_model_layer_names": [("model_state_dict", REQUIRED), ("source_ckpt", REQUIRED),
                                                  ("exclude", []), ("solver", None)],
    "adaptive_load_state_dict": [("net", REQUIRED), ("state_dict", REQUIRED), ("strict", REQUIRED),
                                 ("solver", None)],
    "copy_ckpt_to_local_folder": [("local_ckpt_destination_dir", REQUIRED), ("ckpt_filename", REQUIRED),
                                  ("remote_ckpt_source_dir", None), ("path_src", "local"),
                                  ("overwrite_local_ckpt", False), ("load_weights_only", False)],
    "load_checkpoint_to_model": [("net", REQUIRED), ("ckpt_local_path", REQUIRED), ("load_backbone", False),
                                 ("strict", "StrictLoad.NO_KEY_MATCHING"), ("load_weights_only", False),
                                 ("load_ema_as_net", False), ("load_processing_params", False)],
    "load_pretrained_weights": [("model", REQUIRED), ("architecture", REQUIRED), ("pretrained_weights", REQUIRED)],
    "load_pretrained_weights_local": [("model", REQUIRED), ("architecture", REQUIRED),
                                      ("pretrained_weights", REQUIRED)],
    "raise_informative_runtime_error": [("state_dict", REQUIRED), ("checkpoint", REQUIRED),
                                        ("exception_msg", REQUIRED)],
    "read_ckpt_state_dict": [("ckpt_path", REQUIRED), ("device", "cpu")],
    "transfer_weights": [("model", REQUIRED), ("model_state_dict", REQUIRED)],
    "HpmStruct": [],
    "AccessCounterMixin": None,
    "ConfigInspector": None,
    "UnusedConfigParamException": None,
    "raise_if_unused_params": [("config", REQUIRED)],
    "warn_if_unused_params": [("config", REQUIRED)],
    "wrap_with_warning": [("cls", REQUIRED), ("message", REQUIRED)],
    "Anchors": [("anchors_list", REQUIRED), ("strides", REQUIRED)],
    "DetectionCollateFN": [],
    "CrowdDetectionCollateFN": [],
    "PPYoloECollateFN": [("random_resize_sizes", None), ("random_resize_modes", None)],
    "CrowdDetectionPPYoloECollateFN": [("random_resize_sizes", None), ("random_resize_modes", None)],
    "DetectionPostPredictionCallback": None,
    "DetectionTargetsFormat": None,
    "get_cls_posx_in_target": [("target_format", REQUIRED)],
    "NMS_Type": None,
    "non_max_suppression": [("prediction", REQUIRED), ("conf_thres", 0.1), ("iou_thres", 0.6),
                            ("multi_label_per_box", True), ("with_confidence", False)],
    "matrix_non_max_suppression": [("pred", REQUIRED), ("conf_thres", 0.1), ("kernel", "gaussian"),
                                   ("sigma", 3.0), ("max_num_of_detections", 500)],
    "box_iou": [("box1", REQUIRED), ("box2", REQUIRED)],
    "calc_bbox_iou_matrix": [("pred", REQUIRED)],
    "calculate_bbox_iou_matrix": [("box1", REQUIRED), ("box2", REQUIRED), ("x1y1x2y2", True), ("GIoU", False),
                                  ("DIoU", False), ("CIoU", False), ("eps", 1e-09)],
    "compute_box_area": [("box", REQUIRED)],
    "crowd_ioa": [("det_box", REQUIRED), ("crowd_box", REQUIRED)],
    "xyxy2cxcywh": [("bboxes", REQUIRED)],
    "cxcywh2xyxy": [("bboxes", REQUIRED)],
    "convert_cxcywh_bbox_to_xyxy": [("input_bbox", REQUIRED)],
    "adjust_box_anns": [("bbox", REQUIRED), ("scale_ratio", REQUIRED), ("padw", REQUIRED), ("padh", REQUIRED),
                        ("w_max", REQUIRED), ("h_max", REQUIRED)],
    "get_mosaic_coordinate": [("mosaic_index", REQUIRED), ("xc", REQUIRED), ("yc", REQUIRED), ("w", REQUIRED),
                              ("h", REQUIRED), ("input_h", REQUIRED), ("input_w", REQUIRED)],
    "get_top_k_idx_per_cls": [("preds_scores", REQUIRED), ("preds_cls", REQUIRED), ("top_k", REQUIRED)],
    "compute_detection_matching": [("output", REQUIRED), ("targets", REQUIRED), ("height", REQUIRED),
                                   ("width", REQUIRED), ("iou_thresholds", REQUIRED),
                                   ("denormalize_targets", REQUIRED), ("device", REQUIRED),
                                   ("crowd_targets", None), ("top_k", 100), ("return_on_cpu", True)],
    "compute_img_detection_matching": [("preds", REQUIRED), ("targets", REQUIRED), ("crowd_targets", REQUIRED),
                                       ("height", REQUIRED), ("width", REQUIRED), ("iou_thresholds", REQUIRED),
                                       ("device", REQUIRED), ("denormalize_targets", REQUIRED), ("top_k", 100),
                                       ("return_on_cpu", True)],
    "compute_detection_metrics": [("preds_matched", REQUIRED), ("preds_to_ignore", REQUIRED),
                                  ("preds_scores", REQUIRED), ("preds_cls", REQUIRED), ("targets_cls", REQUIRED),
                                  ("device", REQUIRED), ("recall_thresholds", None), ("score_threshold", 0.1)],
    "compute_detection_metrics_per_cls": [("preds_matched", REQUIRED), ("preds_to_ignore", REQUIRED),
                                          ("preds_scores", REQUIRED), ("n_targets", REQUIRED),
                                          ("recall_thresholds", REQUIRED), ("score_threshold", REQUIRED),
                                          ("device", REQUIRED)],
    "DetectionMetrics": [("num_cls", REQUIRED), ("post_prediction_callback", REQUIRED),
                         ("normalize_targets", False)],
    "undo_image_preprocessing": [("im_tensor", REQUIRED)],
    "DetectionVisualization": None,
    "DDPNotSetupException": None,
    "compute_precise_bn_stats": [("model", REQUIRED), ("loader", REQUIRED), ("precise_bn_batch_size", REQUIRED),
                                 ("num_gpus", REQUIRED)],
    "distributed_all_reduce_tensor_average": [("tensor", REQUIRED), ("n", REQUIRED)],
    "get_gpu_mem_utilization": [],
    "get_local_rank": [],
    "get_world_size": [],
    "initialize_ddp": [],
    "reduce_results_tuple_for_ddp": [("validation_results_tuple", REQUIRED), ("device", REQUIRED)],
    "restart_script_with_ddp": [("num_gpus", None)],
}

# The other names SuperGradients 3.1 code imports (its training.utils __all__, early_stopping, the YOLOX
# losses, IouThreshold, the config-utils views), with SG 3.1.0's signatures.
SG_COMPAT = {
    "EarlyStop": [("phase", REQUIRED), ("monitor", REQUIRED), ("mode", "min"), ("min_delta", 0.0), ("patience", 3),
                  ("check_finite", True), ("threshold", None), ("verbose", False), ("strict", True)],
    "get_param": [("params", REQUIRED), ("name", REQUIRED), ("default_val", None)],
    "tensor_container_to_device": [("obj", REQUIRED), ("device", REQUIRED), ("non_blocking", True)],
    "Timer": [("device", REQUIRED)],
    "WrappedModel": [("module", REQUIRED)],
    "convert_to_tensor": [("array", REQUIRED)],
    "random_seed": [("is_ddp", REQUIRED), ("device", REQUIRED), ("seed", REQUIRED)],
    "torch_version_is_greater_or_equal": [("major", REQUIRED), ("minor", REQUIRED)],
    "AverageMeter": [],
    "recursive_override": [("base", REQUIRED), ("extension", REQUIRED)],
    "check_models_have_same_weights": [("model_1", REQUIRED), ("model_2", REQUIRED)],
    "AccessCounterHpmStruct": [("config", REQUIRED), ("access_counter", None), ("prefix", "")],
    "AccessCounterDict": [("config", REQUIRED), ("access_counter", None), ("prefix", "")],
    "IouThreshold": None,
    "YoloXFastDetectionLoss": [("strides", REQUIRED), ("num_classes", REQUIRED), ("use_l1", False),
                               ("center_sampling_radius", 2.5), ("iou_type", "iou"), ("dynamic_ks_bias", 1.1),
                               ("sync_num_fgs", False), ("obj_loss_fix", False)],
    # super_gradients.training.datasets.datasets_utils (pre_prediction_callback for multi-scale training)
    "MultiscalePrePredictionCallback": [("multiscale_range", 5), ("image_size_steps", 32), ("change_frequency", 10)],
    "DetectionMultiscalePrePredictionCallback": [("multiscale_range", 5), ("image_size_steps", 32),
                                                 ("change_frequency", 10)],
}

# name -> methods SG code calls on it (each: method name, leading parameters after self as above).
SG_METHODS = {
    "AccessCounterDict": [("get_all_params", []), ("get_used_params", []), ("get_unused_params", [])],
    "AccessCounterHpmStruct": [("get_all_params", []), ("get_used_params", []), ("get_unused_params", [])],
    "IouThreshold": [("is_range", []), ("to_tensor", [])],
    "AverageMeter": [("update", [("value", REQUIRED), ("batch_size", REQUIRED)])],
    "Timer": [("start", []), ("stop", [])],
    "MultiscalePrePredictionCallback": [("__call__", [("inputs", REQUIRED), ("targets", REQUIRED),
                                                      ("batch_idx", REQUIRED)])],
    "DetectionMultiscalePrePredictionCallback": [("__call__", [("inputs", REQUIRED), ("targets", REQUIRED),
                                                               ("batch_idx", REQUIRED)])],
}

ALL_NAMES = {**CONTRACT, **SG_COMPAT}

BUILT = sorted(ALL_NAMES)


def test_the_tables_do_not_overlap():
    assert not set(CONTRACT) & set(SG_COMPAT)


def _signature_of(obj):
    if inspect.isclass(obj):
        return inspect.signature(obj.__init__), True
    return inspect.signature(obj), False


def _default_matches(actual, expected):
    if expected is REQUIRED:
        return actual is inspect.Parameter.empty
    if isinstance(expected, str) and expected.startswith("StrictLoad."):
        return isinstance(actual, enum.Enum) and f"StrictLoad.{actual.name}" == expected
    return actual == expected and type(actual) is type(expected)


@pytest.mark.parametrize("name", BUILT)
def test_built_name_matches_the_table(name):
    assert hasattr(utils, name), f"trainwright.utils does not export {name}"
    expected = ALL_NAMES[name]
    if expected is None:
        return
    signature, is_class = _signature_of(getattr(utils, name))
    _check_parameters(name, signature, is_class, expected)


@pytest.mark.parametrize("name", sorted(SG_METHODS))
def test_sg_methods_exist_with_their_parameters(name):
    obj = getattr(utils, name)
    for method, expected in SG_METHODS[name]:
        assert callable(getattr(obj, method, None)), f"{name}.{method} is missing"
        _check_parameters(f"{name}.{method}", inspect.signature(getattr(obj, method)), True, expected)


def _check_parameters(name, signature, is_class, expected):
    params = [p for p in signature.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if is_class:
        params = params[1:]  # self
    got = [(p.name, p.default) for p in params[: len(expected)]]
    assert [g[0] for g in got] == [e[0] for e in expected], f"{name}: parameters {got}"
    for (pname, actual), (_, wanted) in zip(got, expected):
        assert _default_matches(actual, wanted), f"{name}({pname}=...) default is {actual!r}, table says {wanted!r}"
    # Extra parameters beyond the table must have defaults (keyword-only or defaulted).
    for p in params[len(expected):]:
        assert p.default is not inspect.Parameter.empty, f"{name}: extra parameter {p.name} needs a default"
